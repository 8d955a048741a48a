// Sort any table.sortable by clicking a header; numeric cells carry data-v.
(function () {
  "use strict";
  function key(td) {
    if (!td) return "";
    var v = td.getAttribute("data-v");
    return v === null ? td.textContent.toLowerCase() : parseFloat(v);
  }
  function sortBy(th) {
    var table = th.closest("table"), body = table.tBodies[0];
    var col = Array.prototype.indexOf.call(th.parentNode.children, th);
    var desc = !th.classList.contains("desc");
    Array.prototype.forEach.call(th.parentNode.children, function (h) { h.classList.remove("asc", "desc"); });
    th.classList.add(desc ? "desc" : "asc");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[col]), y = key(b.cells[col]);
      var c = (typeof x === "number" && typeof y === "number") ? x - y : String(x).localeCompare(String(y));
      return desc ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  document.querySelectorAll("table.sortable th").forEach(function (th) {
    th.addEventListener("click", function () { sortBy(th); });
  });
  document.documentElement.setAttribute("data-report-ready", String(document.querySelectorAll("svg.chart").length));
})();
