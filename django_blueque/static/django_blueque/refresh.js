// Blueque queues page: refresh the counts in place every few seconds.
// The page works without this script; it only reads (GET) the page's JSON.
"use strict";
(function () {
  const table = document.getElementById("blueque-queues");
  if (!table || !window.fetch) {
    return;
  }
  const url = table.dataset.countsUrl;
  const every = 5000;

  function update(figures) {
    for (const row of table.querySelectorAll("tr[data-queue]")) {
      const queue = figures[row.dataset.queue];
      if (!queue) {
        continue;
      }
      for (const cell of row.querySelectorAll("[data-field]")) {
        const field = cell.dataset.field;
        if (!(field in queue)) {
          continue;
        }
        if (field === "chart") {
          // Drawn and escaped by the server (django_blueque/admin/chart.py).
          const svg = new DOMParser().parseFromString(queue.chart, "image/svg+xml").documentElement;
          if (svg && svg.nodeName === "svg") {
            cell.replaceChildren(document.importNode(svg, true));
          }
        } else {
          cell.textContent = String(queue[field]);
        }
      }
    }
  }

  function refresh() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((response) => (response.ok ? response.json() : null))
      .then((figures) => figures && update(figures))
      .catch(() => {})
      .finally(() => window.setTimeout(refresh, every));
  }

  window.setTimeout(refresh, every);
})();
