// Draws the analytics charts with the vendored Chart.js (static/vendor/chartjs), under the strict CSP.
//
// Markup: <canvas data-chart="NAME" data-spec="JSON">. The spec travels in an (autoescaped) attribute rather
// than a json_script block because htmx, configured with allowScriptTags: false, drops every <script> element
// from swapped content. The spec is plain data built by analytics/views.py:
//   {"type": "line" | "bar", "stacked": bool, "percent": bool, "labels": [...],
//    "datasets": [{"label": "...", "data": [numbers or null],
//                  "links": [drill-down URL or null, ...]  or  "link": "URL with {label} for the x label"}]}
// Clicking a non-zero bar or point opens its drill-down URL (the same list the numbers table links to). Daily
// charts send one "link" template per series instead of a URL per day.
// htmx swaps the panel when the range changes; htmx:load draws the charts of the new content.
(function () {
  "use strict";

  const PALETTE = ["#2563eb", "#16a34a", "#dc2626", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d",
                   "#64748b"];

  function specFor(canvas) {
    try {
      return JSON.parse(canvas.dataset.spec || "null");
    } catch (error) {
      return null;
    }
  }

  function datasetsFor(spec) {
    return spec.datasets.map(function (dataset, i) {
      const color = dataset.color || PALETTE[i % PALETTE.length];
      return {
        label: dataset.label,
        data: dataset.data,
        links: dataset.links || [],
        link: dataset.link || null,
        borderColor: color,
        backgroundColor: spec.type === "line" ? color + "33" : color,
        borderWidth: spec.type === "line" ? 2 : 0,
        pointRadius: spec.type === "line" ? 2 : 0,
        spanGaps: false,
        fill: false,
        tension: 0.2,
        stack: spec.stacked ? "all" : undefined,
      };
    });
  }

  function linkAt(chart, event) {
    const hits = chart.getElementsAtEventForMode(event, "nearest", { intersect: true }, true);
    if (!hits.length) {
      return null;
    }
    const dataset = chart.data.datasets[hits[0].datasetIndex];
    const index = hits[0].index;
    if (!dataset.data[index]) {
      return null;  // nobody behind a zero
    }
    if (dataset.link) {
      return dataset.link.split("{label}").join(encodeURIComponent(chart.data.labels[index]));
    }
    return dataset.links[index] || null;
  }

  function optionsFor(spec) {
    const percent = Boolean(spec.percent);
    return {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: "nearest", intersect: true },
      scales: {
        x: { stacked: Boolean(spec.stacked) },
        y: {
          stacked: Boolean(spec.stacked),
          beginAtZero: true,
          ticks: percent ? { callback: function (value) { return value + "%"; } } : { precision: 0 },
        },
      },
      plugins: { legend: { position: "bottom" } },
      onClick: function (event, elements, chart) {
        const url = linkAt(chart, event);
        if (url) {
          window.location.assign(url);
        }
      },
      onHover: function (event, elements, chart) {
        chart.canvas.style.cursor = linkAt(chart, event) ? "pointer" : "default";
      },
    };
  }

  function chartDraw(canvas) {
    if (canvas.dataset.drawn) {
      return;
    }
    const spec = specFor(canvas);
    if (!spec || typeof window.Chart === "undefined") {
      return;
    }
    canvas.dataset.drawn = "1";
    new window.Chart(canvas, {
      type: spec.type,
      data: { labels: spec.labels, datasets: datasetsFor(spec) },
      options: optionsFor(spec),
    });
  }

  function chartsForgetDetached() {
    Object.values(window.Chart ? window.Chart.instances : {}).forEach(function (chart) {
      if (!chart.canvas || !chart.canvas.isConnected) {
        chart.destroy();
      }
    });
  }

  function chartsDraw(root) {
    chartsForgetDetached();
    root.querySelectorAll("canvas[data-chart]").forEach(chartDraw);
  }

  document.addEventListener("DOMContentLoaded", function () { chartsDraw(document); });
  document.addEventListener("htmx:load", function (event) { chartsDraw(event.detail.elt); });
})();
