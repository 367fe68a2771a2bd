(function () {
  "use strict";
  // Sort a table by a column: numbers by their data-v, text by its text.
  document.querySelectorAll("table.sortable").forEach(function (t) {
    var heads = t.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, i) {
      th.addEventListener("click", function () {
        var asc = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var num = th.classList.contains("n");
        var body = t.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[i], y = b.cells[i], r;
          if (num) {
            r = parseFloat(x.dataset.v || x.textContent) - parseFloat(y.dataset.v || y.textContent);
          } else {
            r = x.textContent.localeCompare(y.textContent);
          }
          return asc ? r : -r;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  // Filter a table's rows by the text they contain.
  document.querySelectorAll("input.filter").forEach(function (inp) {
    var t = document.getElementById(inp.dataset.table);
    var count = document.getElementById(inp.dataset.table + "-count");
    function apply() {
      var q = inp.value.toLowerCase(), shown = 0, rows = t.tBodies[0].rows;
      Array.prototype.forEach.call(rows, function (r) {
        r.hidden = q !== "" && r.textContent.toLowerCase().indexOf(q) < 0;
        if (!r.hidden) shown++;
      });
      if (count) count.textContent = shown + " of " + rows.length + " rows";
    }
    inp.addEventListener("input", apply);
    apply();
  });
})();
