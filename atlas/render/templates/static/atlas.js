// Atlas pages: draw the inline Vega-Lite specs with the vendored vega bundle (themed
// to match the page), switch the layer grid between feature visualizations and dataset
// examples, the light/dark theme toggle (stored in localStorage), search (its index
// is a script that sets window.ATLAS_INDEX, loaded on first use, so it works from
// file://), and keyboard shortcuts (/: search, n / p: next / previous unit, ?: help).
// Specs live in <script type="application/json"> beside their chart, never fetched,
// so charts work from file:// as well as from a server: each names its template (in
// static/charts.js, window.ATLAS_CHARTS) and holds what it adds to it (see spec()).
(function () {
  "use strict";
  function dark() {
    var chosen = document.documentElement.dataset.theme;
    if (chosen) return chosen === "dark";
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
  }
  // Chart colors from the page's own variables, so charts follow the theme.
  function chartConfig() {
    var style = getComputedStyle(document.documentElement);
    var ink = style.getPropertyValue("--text").trim(), muted = style.getPropertyValue("--muted").trim();
    var rule = style.getPropertyValue("--rule").trim();
    return {
      background: null,
      view: { stroke: rule },
      axis: { labelColor: muted, titleColor: ink, gridColor: rule, domainColor: muted, tickColor: muted },
      legend: { labelColor: muted, titleColor: ink },
      title: { color: ink },
      header: { labelColor: ink, titleColor: ink }
    };
  }
  // A JSON merge patch (RFC 7386) applied to a copy of target.
  function merged(target, patch) {
    if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return patch;
    var out = {};
    if (target && typeof target === "object" && !Array.isArray(target)) {
      Object.keys(target).forEach(function (key) { out[key] = target[key]; });
    }
    Object.keys(patch).forEach(function (key) {
      if (patch[key] === null) delete out[key];
      else out[key] = merged(out[key], patch[key]);
    });
    return out;
  }
  // A page's chart (atlas/render/charts.py, embedded): its template patched, its data
  // from columns (c) or rows (v); or a whole spec (s).
  function spec(found) {
    if (found.s) return found.s;
    var out = merged(JSON.parse(JSON.stringify(window.ATLAS_CHARTS[found.t])), found.p);
    var rows = found.v;
    if (!rows) {
      var fields = Object.keys(found.c), length = fields.length ? found.c[fields[0]].length : 0;
      rows = [];
      for (var i = 0; i < length; i++) {
        var row = {};
        fields.forEach(function (field) { row[field] = found.c[field][i]; });
        rows.push(row);
      }
    }
    out.data = { values: rows };
    return out;
  }
  // The chart bundle (800 KB) is loaded when the first chart nears the screen, and each
  // chart is drawn as it does (a layer of a thousand units shows its grid first); the
  // scripts to load are named on atlas.js's own tag (data-charts).
  var chartScripts = (document.currentScript && document.currentScript.dataset.charts || "").split(" ").filter(Boolean);
  var waiting = null;
  function withCharts(then) {
    if (typeof vegaEmbed === "function" && window.ATLAS_CHARTS) { then(); return; }
    if (waiting) { waiting.push(then); return; }
    waiting = [then];
    (function next(i) {
      if (i === chartScripts.length) { waiting.forEach(function (f) { f(); }); return; }
      var script = document.createElement("script");
      script.src = chartScripts[i];
      script.onload = function () { next(i + 1); };
      document.body.appendChild(script);
    })(0);
  }
  function drawChart(figure) {
    var target = figure.querySelector(".vega-chart");
    var source = figure.querySelector("script.vega-spec");
    if (!target || !source) return;
    figure.dataset.drawn = "true";
    target.textContent = "";
    vegaEmbed(target, spec(JSON.parse(source.textContent)), { actions: false, renderer: "svg", config: chartConfig() })
      .catch(function (error) { target.textContent = "Chart failed: " + error; });
  }
  function drawCharts() {
    var figures = Array.prototype.slice.call(document.querySelectorAll(".chart"));
    if (!figures.length || !chartScripts.length) return;
    figures.forEach(function (figure) {  // a chart is an image named by its caption
      var target = figure.querySelector(".vega-chart"), caption = figure.querySelector("figcaption");
      if (!target) return;
      target.setAttribute("role", "img");
      if (caption) target.setAttribute("aria-label", caption.textContent.trim());
    });
    if (!("IntersectionObserver" in window)) { withCharts(function () { figures.forEach(drawChart); }); return; }
    var observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (!entry.isIntersecting) return;
        observer.unobserve(entry.target);
        withCharts(function () { drawChart(entry.target); });
      });
    }, { rootMargin: "800px 0px" });
    figures.forEach(function (figure) { observer.observe(figure); });
  }
  function redrawCharts() {  // in the theme's colors
    document.querySelectorAll('.chart[data-drawn="true"]').forEach(drawChart);
  }
  function wireTheme() {
    var button = document.getElementById("theme-toggle");
    if (!button) return;
    function show() { button.setAttribute("aria-pressed", String(dark())); }
    show();
    button.addEventListener("click", function () {
      var next = dark() ? "light" : "dark";
      document.documentElement.dataset.theme = next;
      try { localStorage.setItem("atlas-theme", next); } catch (e) { /* file:// in some browsers */ }
      show();
      redrawCharts();
    });
  }
  // The header's search box, theme toggle and help button work only with JavaScript, so
  // this makes them (a thousand pages need not each carry them); links from the site
  // root, which is where this script's folder is.
  var ROOT = document.currentScript.getAttribute("src").replace(/static\/atlas\.js$/, "");
  function makeHeader() {
    var box = document.querySelector(".site-header .search"), tools = document.querySelector(".site-header .header-tools");
    if (box && !box.firstChild) {
      box.innerHTML = '<input type="search" id="search" placeholder="Search units, families, layers  ( / )" ' +
        'aria-label="Search the atlas" autocomplete="off" aria-controls="search-results">' +
        '<ul id="search-results" class="search-results" hidden></ul>';
      box.firstChild.setAttribute("data-index", ROOT + "search-index.js");
      box.firstChild.setAttribute("data-home", ROOT + "index.html");
    }
    if (tools && !tools.firstChild) {
      tools.innerHTML = '<button type="button" id="theme-toggle" aria-label="Switch between light and dark theme">' +
        '\u25d0 theme</button> <button type="button" id="keys-help" aria-label="Keyboard shortcuts" ' +
        'aria-haspopup="dialog">?</button>';
    }
  }
  var MAX_RESULTS = 30;
  function wireSearch() {
    var input = document.getElementById("search");
    var list = document.getElementById("search-results");
    if (!input || !list) return;
    // Links in the index are site paths; this page reaches the site root through data-home.
    var root = input.getAttribute("data-home").replace(/index\.html$/, "");
    var haystack = null;
    function load(then) {
      if (window.ATLAS_INDEX) { then(); return; }
      var script = document.createElement("script");
      script.src = input.getAttribute("data-index");
      script.onload = then;
      document.head.appendChild(script);
    }
    function search() {
      var index = window.ATLAS_INDEX || [];
      if (!haystack) haystack = index.map(function (entry) { return entry[1].toLowerCase(); });
      var terms = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      list.textContent = "";
      if (!terms.length) { list.hidden = true; return; }
      // Rank: entries whose own name (not their "also in ..." matches) has every term
      // first, then by how many terms are whole words of it ("unit 2" before "2 units").
      var found = [];
      for (var i = 0; i < index.length; i++) {
        var text = haystack[i];
        if (!terms.every(function (t) { return text.indexOf(t) !== -1; })) continue;
        var own = text.split(" · also in ")[0];
        var words = own.split(/[^a-z0-9_.-]+/);
        var score = terms.every(function (t) { return own.indexOf(t) !== -1; }) ? 100 : 0;
        terms.forEach(function (t) { if (words.indexOf(t) !== -1) score++; });
        found.push([score, i]);
      }
      found.sort(function (a, b) { return b[0] - a[0] || a[1] - b[1]; });
      var shown = 0;
      found.slice(0, MAX_RESULTS).forEach(function (hit) {
        var i = hit[1];
        var item = document.createElement("li");
        var link = document.createElement("a");
        link.href = root + index[i][2];
        link.textContent = index[i][1];
        var kind = document.createElement("span");
        kind.className = "kind";
        kind.textContent = index[i][0];
        item.appendChild(kind);
        item.appendChild(link);
        list.appendChild(item);
        shown++;
      });
      if (!shown) {
        var none = document.createElement("li");
        none.textContent = "Nothing found";
        list.appendChild(none);
      }
      list.hidden = false;
    }
    input.addEventListener("focus", function () { load(search); });
    input.addEventListener("input", function () { load(search); });
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter") {
        var first = list.querySelector("a");
        if (first) window.location.href = first.href;
      } else if (event.key === "Escape") {
        input.value = ""; list.hidden = true; input.blur();
      }
    });
  }
  // The keyboard help, made the first time it is asked for (every page would carry it).
  function helpDialog() {
    var dialog = document.getElementById("keys-dialog");
    if (dialog) return dialog;
    dialog = document.createElement("dialog");
    dialog.className = "keys";
    dialog.id = "keys-dialog";
    dialog.setAttribute("aria-label", "Keyboard shortcuts");
    dialog.innerHTML = "<p><strong>Keyboard shortcuts</strong></p>" +
      "<p><kbd>/</kbd> search · <kbd>n</kbd> next unit (on a layer's page: layer) · <kbd>p</kbd> previous · " +
      "<kbd>?</kbd> this help · <kbd>Esc</kbd> close</p><form method=\"dialog\"><button>Close</button></form>";
    document.body.appendChild(dialog);
    return dialog;
  }
  function wireKeys() {
    var help = document.getElementById("keys-help");
    function toggleHelp() {
      var dialog = helpDialog();
      if (typeof dialog.showModal !== "function") return;
      if (dialog.open) dialog.close(); else dialog.showModal();
    }
    if (help) help.addEventListener("click", toggleHelp);
    document.addEventListener("keydown", function (event) {
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      var field = event.target;
      if (field && (field.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(field.tagName))) return;
      var link = null;
      if (event.key === "/") {
        var search = document.getElementById("search");
        if (search) { event.preventDefault(); search.focus(); }
        return;
      }
      if (event.key === "n") link = document.querySelector('a[rel="next"]');
      else if (event.key === "p") link = document.querySelector('a[rel="prev"]');
      else if (event.key === "?") { event.preventDefault(); toggleHelp(); return; }
      if (link) window.location.href = link.href;
    });
  }
  // The layer grid shows feature visualizations or top dataset examples.
  function wireGridSwitch() {
    var grid = document.getElementById("unit-grid");
    var buttons = document.querySelectorAll("[data-grid-show]");
    buttons.forEach(function (button) {
      button.addEventListener("click", function () {
        var examples = button.getAttribute("data-grid-show") === "examples";
        grid.classList.toggle("show-examples", examples);
        buttons.forEach(function (b) { b.setAttribute("aria-pressed", String(b === button)); });
      });
    });
  }
  // An activation atlas's zoom: the slider (shown only with scripts) sets the cells' side.
  function wireAtlasZoom() {
    var slider = document.querySelector("[data-atlas-zoom]");
    var map = document.querySelector(".atlas-map");
    if (!slider || !map) return;
    slider.closest(".atlas-controls").hidden = false;
    slider.addEventListener("input", function () { map.style.setProperty("--cell", slider.value + "px"); });
  }
  // A circuit diagram wider than a phone scrolls in place: start with its unit in view.
  function centreDiagrams() {
    document.querySelectorAll(".diagram .scroll").forEach(function (box) {
      box.scrollLeft = (box.scrollWidth - box.clientWidth) / 2;
    });
  }
  function start() {
    makeHeader(); drawCharts(); wireGridSwitch(); wireAtlasZoom(); centreDiagrams(); wireTheme(); wireSearch(); wireKeys();
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
