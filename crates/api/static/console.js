// The console's one script: statuses on the page change as the runs move
// (server-sent events from /console/events). Text only: never HTML.
(function () {
  "use strict";
  var ENDED = ["published", "failed", "cancelled", "rejected", "expired"];
  var cells = document.querySelectorAll("[data-run]");

  // The runs on the page still moving.
  function moving() {
    var ids = [];
    cells.forEach(function (cell) {
      var id = cell.getAttribute("data-run");
      if (ENDED.indexOf(cell.textContent.trim()) < 0 && ids.indexOf(id) < 0) {
        ids.push(id);
      }
    });
    return ids;
  }

  function listen() {
    var ids = moving();
    if (!ids.length || !window.EventSource) {
      return;
    }
    var source = new EventSource("/console/events?runs=" + encodeURIComponent(ids.join(",")));
    source.addEventListener("status", function (event) {
      var change = JSON.parse(event.data);
      cells.forEach(function (cell) {
        if (cell.getAttribute("data-run") === change.runId) {
          cell.textContent = change.status;
          cell.className = "status " + change.status;
        }
      });
    });
    // A stream lasts ten minutes: while a run still moves, open another.
    source.addEventListener("end", function () {
      source.close();
      window.setTimeout(listen, 1000);
    });
  }

  listen();
})();
