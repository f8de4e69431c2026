// Atlas pages: draw the inline Vega-Lite specs with the vendored vega bundle.
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
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawCharts);
  } else {
    drawCharts();
  }
})();
