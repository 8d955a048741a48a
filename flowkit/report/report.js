// Tables: click a header to sort every row (numeric cells carry data-v), "show all" expands a
// capped table in place, "CSV" saves all of its rows (raw numbers from data-c / data-v).
(function () {
  "use strict";
  function key(td) {
    if (!td) return "";
    var v = td.getAttribute("data-v");
    return v === null ? td.textContent.toLowerCase() : parseFloat(v);
  }
  function recap(table) {
    // after a sort the first data-cap rows are the ones shown, unless the table is expanded
    var cap = parseInt(table.getAttribute("data-cap") || "0", 10);
    Array.prototype.forEach.call(table.tBodies[0].rows, function (r, i) {
      r.classList.toggle("x", cap > 0 && i >= cap);
    });
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
    recap(table);
  }
  function tableOf(button) {
    var wrap = button.closest("p").previousElementSibling;
    return wrap ? wrap.querySelector("table") : null;
  }
  function expand(button) {
    var table = tableOf(button), more = button.closest("p");
    var open = table.classList.toggle("expanded");
    var n = table.tBodies[0].rows.length, cap = table.getAttribute("data-cap");
    more.querySelector(".shown").textContent = (open ? n : parseInt(cap, 10)).toLocaleString("en-US");
    button.textContent = open ? "show the first " + cap : "show all " + n.toLocaleString("en-US");
  }
  function cell(text) {
    return /[",\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }
  function csvText(table) {
    var lines = [];
    lines.push(Array.prototype.map.call(table.tHead.rows[0].cells, function (th) { return cell(th.textContent); }).join(","));
    Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
      lines.push(Array.prototype.map.call(r.cells, function (td) {
        var c = td.getAttribute("data-c");
        return cell(c !== null ? c : td.textContent);
      }).join(","));
    });
    return lines.join("\n") + "\n";
  }
  function csv(button) {
    var table = tableOf(button), link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([csvText(table)], {type: "text/csv"}));
    link.download = (table.getAttribute("data-name") || "table") + ".csv";
    document.body.appendChild(link);
    link.click();
    link.remove();
  }
  document.querySelectorAll("table.sortable th").forEach(function (th) {
    th.addEventListener("click", function () { sortBy(th); });
  });
  document.querySelectorAll("p.more button.expand").forEach(function (b) {
    b.addEventListener("click", function () { expand(b); });
  });
  document.querySelectorAll("p.more button.csv").forEach(function (b) {
    b.addEventListener("click", function () { csv(b); });
  });
  window.flowkitReport = {csvText: csvText};  // every row of a table as CSV (scripts and tests)
  document.documentElement.setAttribute("data-report-ready", String(document.querySelectorAll("svg.chart").length));
})();
