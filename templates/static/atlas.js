// Atlas pages: draw the inline Vega-Lite specs with the vendored vega bundle (themed
// to match the page), switch the layer grid between feature visualizations and dataset
// examples, the light/dark theme toggle (stored in localStorage), and keyboard
// shortcuts (n / p: next / previous unit, ?: help).
// Specs live in <script type="application/json"> beside their chart, never fetched,
// so charts work from file:// as well as from a server.
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
  function drawCharts() {
    if (typeof vegaEmbed !== "function") return;
    var config = chartConfig();
    document.querySelectorAll(".chart").forEach(function (figure) {
      var target = figure.querySelector(".vega-chart");
      var source = figure.querySelector("script.vega-spec");
      if (!target || !source) return;
      target.textContent = "";
      vegaEmbed(target, JSON.parse(source.textContent), { actions: false, renderer: "svg", config: config })
        .catch(function (error) { target.textContent = "Chart failed: " + error; });
    });
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
      drawCharts();
    });
  }
  function wireKeys() {
    var dialog = document.getElementById("keys-dialog");
    var help = document.getElementById("keys-help");
    function toggleHelp() {
      if (!dialog || typeof dialog.showModal !== "function") return;
      if (dialog.open) dialog.close(); else dialog.showModal();
    }
    if (help) help.addEventListener("click", toggleHelp);
    document.addEventListener("keydown", function (event) {
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      var field = event.target;
      if (field && (field.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(field.tagName))) return;
      var link = null;
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
  function start() { drawCharts(); wireGridSwitch(); wireTheme(); wireKeys(); }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
