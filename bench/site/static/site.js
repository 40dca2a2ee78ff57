// bench site: sort any table.sortable by a header click, filter rows by text. Plain JavaScript, no network.
(function () {
  "use strict";

  // A cell sorts by its data-sort attribute when it has one, else by its text; empty values always go last.
  function key(row, col, numeric) {
    var cell = row.cells[col];
    var raw = cell ? (cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent) : "";
    raw = raw.trim();
    if (raw === "") return null;
    if (numeric) { var n = parseFloat(raw); return isNaN(n) ? null : n; }
    return raw.toLowerCase();
  }

  function sortBy(table, th) {
    var col = Array.prototype.indexOf.call(th.parentNode.children, th);
    var numeric = th.getAttribute("data-type") === "number";
    // A score column names which way is better (data-better: max or min): its first click puts the best first,
    // so fd_judge (lower is better) sorts ascending and accuracy descending. Every other column starts ascending.
    var now = th.getAttribute("aria-sort");
    var dir = now === "ascending" ? -1 : now === "descending" ? 1 : th.getAttribute("data-better") === "max" ? -1 : 1;
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a, col, numeric), y = key(b, col, numeric);
      if (x === null || y === null) return (x === null) - (y === null);
      return x < y ? -dir : x > y ? dir : 0;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(th.parentNode.children, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
  }

  function filter(text) {
    var words = text.toLowerCase().split(/\s+/).filter(Boolean);
    var shown = 0, total = 0;
    document.querySelectorAll("table.sortable tbody tr").forEach(function (row) {
      var hay = row.textContent.toLowerCase();
      var keep = words.every(function (w) { return hay.indexOf(w) !== -1; });
      row.hidden = !keep;
      total += 1;
      shown += keep ? 1 : 0;
    });
    var count = document.getElementById("filter-count");
    if (count) count.textContent = words.length ? shown + " of " + total + " rows" : "";
  }

  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("thead th").forEach(function (th) {
      th.tabIndex = 0;
      th.addEventListener("click", function () { sortBy(table, th); });
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(table, th); }
      });
    });
  });
  var box = document.getElementById("filter");
  if (box) box.addEventListener("input", function () { filter(box.value); });
})();
