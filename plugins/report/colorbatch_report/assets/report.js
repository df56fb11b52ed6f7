// colorbatch report: sortable tables, before/after sliders, gallery pages.
(function () {
  "use strict";

  function setSlider(input) {
    var v = Math.max(0, Math.min(100, Number(input.value)));
    var box = input.closest(".panel").querySelector(".compare");
    if (!box) return;
    var over = box.querySelector("img.over");
    var line = box.querySelector(".divider");
    if (over) over.style.clipPath = "inset(0 " + (100 - v) + "% 0 0)";
    if (line) line.style.left = v + "%";
  }
  document.addEventListener("input", function (e) {
    if (e.target && e.target.matches && e.target.matches("input.slider")) setSlider(e.target);
  });

  function cellKey(row, col) {
    var cell = row.cells[col];
    if (!cell) return { num: NaN, text: "" };
    var raw = cell.hasAttribute("data-value") ? cell.getAttribute("data-value") : cell.textContent;
    var num = raw === "" ? NaN : Number(raw);
    return { num: num, text: raw };
  }
  function sortTable(th) {
    var table = th.closest("table");
    var col = Array.prototype.indexOf.call(th.parentNode.children, th);
    var asc = th.getAttribute("aria-sort") !== "ascending";
    var numeric = th.getAttribute("data-type") !== "text";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var keyed = rows.map(function (r, i) { return { r: r, k: cellKey(r, col), i: i }; });
    keyed.sort(function (a, b) {
      var d;
      if (numeric) {
        var an = isNaN(a.k.num), bn = isNaN(b.k.num);
        if (an || bn) return an === bn ? a.i - b.i : (an ? 1 : -1);  // blanks last
        d = a.k.num - b.k.num;
      } else {
        d = a.k.text.localeCompare(b.k.text, undefined, { numeric: true });
      }
      return (asc ? d : -d) || a.i - b.i;
    });
    var frag = document.createDocumentFragment();
    keyed.forEach(function (x) { frag.appendChild(x.r); });
    body.appendChild(frag);
    Array.prototype.forEach.call(th.parentNode.children, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
  }
  document.querySelectorAll("table.sortable thead th").forEach(function (th) {
    th.addEventListener("click", function () { sortTable(th); });
  });

  function paginate(grid) {
    var size = Number(grid.getAttribute("data-page-size")) || 24;
    var cards = grid.querySelectorAll("figure.card");
    var pages = Math.max(1, Math.ceil(cards.length / size));
    var pager = document.getElementById(grid.getAttribute("data-pager"));
    var page = 0;
    function show(p) {
      page = Math.max(0, Math.min(pages - 1, p));
      cards.forEach(function (c, i) { c.classList.toggle("hidden", Math.floor(i / size) !== page); });
      if (pager) {
        pager.querySelector(".where").textContent = "page " + (page + 1) + " of " + pages;
        pager.querySelector(".prev").disabled = page === 0;
        pager.querySelector(".next").disabled = page === pages - 1;
      }
    }
    if (pager) {
      pager.hidden = pages < 2;
      pager.querySelector(".prev").addEventListener("click", function () { show(page - 1); });
      pager.querySelector(".next").addEventListener("click", function () { show(page + 1); });
    }
    show(0);
  }
  document.querySelectorAll(".grid-cards[data-page-size]").forEach(paginate);
})();
