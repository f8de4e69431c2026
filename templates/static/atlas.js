// Atlas pages: draw the inline Vega-Lite specs with the vendored vega bundle, and
// switch the layer grid between feature visualizations and dataset examples.
// Specs live in <script type="application/json"> beside their chart, never fetched,
// so charts work from file:// as well as from a server.
(function () {
  "use strict";
  function drawCharts() {
    if (typeof vegaEmbed !== "function") return;
    document.querySelectorAll(".chart").forEach(function (figure) {
      var target = figure.querySelector(".vega-chart");
      var source = figure.querySelector("script.vega-spec");
      if (!target || !source) return;
      vegaEmbed(target, JSON.parse(source.textContent), { actions: false, renderer: "svg" })
        .catch(function (error) { target.textContent = "Chart failed: " + error; });
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
  function start() { drawCharts(); wireGridSwitch(); }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
