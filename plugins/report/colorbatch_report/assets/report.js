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
  // tables backed by JSON data (the per-image metrics): sort all rows, show one page
  function fmt(v) {
    if (v === null || v === undefined) return "";
    if (typeof v !== "number") return String(v);
    if (Number.isInteger(v)) return String(v);
    return String(Number(v.toPrecision(4)));
  }
  function dataTable(table) {
    var data = JSON.parse(document.getElementById(table.getAttribute("data-source")).textContent);
    var size = Number(table.getAttribute("data-page-size")) || 200;
    var pager = document.getElementById(table.getAttribute("data-pager"));
    var order = data.rows.map(function (_, i) { return i; });
    var pages = Math.max(1, Math.ceil(order.length / size));
    var page = 0;
    function cell(v, col) {
      var td = document.createElement("td");
      if (col === 0) { td.className = "item"; td.title = v; }
      else if (data.gain[col] && typeof v === "number" && v !== 0) td.className = v > 0 ? "gain pos" : "gain neg";
      td.setAttribute("data-value", v === null ? "" : String(v));
      td.textContent = col === 0 ? v : fmt(v);
      return td;
    }
    function render() {
      var body = document.createElement("tbody");
      order.slice(page * size, (page + 1) * size).forEach(function (i) {
        var tr = document.createElement("tr");
        data.rows[i].forEach(function (v, col) { tr.appendChild(cell(v, col)); });
        body.appendChild(tr);
      });
      table.replaceChild(body, table.tBodies[0]);
      if (pager) {
        pager.hidden = pages < 2;
        pager.querySelector(".where").textContent = "rows " + (page * size + 1) + "\u2013" +
          Math.min(order.length, (page + 1) * size) + " of " + order.length;
        pager.querySelector(".prev").disabled = page === 0;
        pager.querySelector(".next").disabled = page === pages - 1;
      }
    }
    if (pager) {
      pager.querySelector(".prev").addEventListener("click", function () { page = Math.max(0, page - 1); render(); });
      pager.querySelector(".next").addEventListener("click", function () { page = Math.min(pages - 1, page + 1); render(); });
    }
    table.querySelectorAll("thead th").forEach(function (th, col) {
      th.addEventListener("click", function () {
        var asc = th.getAttribute("aria-sort") !== "ascending";
        var text = col === 0;
        order.sort(function (a, b) {
          var x = data.rows[a][col], y = data.rows[b][col], d;
          if (text) d = String(x).localeCompare(String(y), undefined, { numeric: true });
          else {
            var xn = typeof x !== "number", yn = typeof y !== "number";
            if (xn || yn) return xn === yn ? a - b : (xn ? 1 : -1);  // blanks last
            d = x - y;
          }
          return (asc ? d : -d) || a - b;
        });
        table.querySelectorAll("thead th").forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        page = 0;
        render();
      });
    });
    render();
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    if (table.hasAttribute("data-source")) { dataTable(table); return; }
    table.querySelectorAll("thead th").forEach(function (th) {
      th.addEventListener("click", function () { sortTable(th); });
    });
  });

  function paginate(grid) {
    var size = Number(grid.getAttribute("data-page-size")) || 24;
    var cards = grid.querySelectorAll("figure.card");
    var pages = Math.max(1, Math.ceil(cards.length / size));
    var pagers = (grid.getAttribute("data-pager") || "").split(" ").map(function (id) {
      return document.getElementById(id);
    }).filter(Boolean);
    var page = 0;
    function show(p, scroll) {
      page = Math.max(0, Math.min(pages - 1, p));
      cards.forEach(function (c, i) { c.classList.toggle("hidden", Math.floor(i / size) !== page); });
      pagers.forEach(function (pager) {
        pager.querySelector(".where").textContent = "page " + (page + 1) + " of " + pages;
        pager.querySelector(".prev").disabled = page === 0;
        pager.querySelector(".next").disabled = page === pages - 1;
      });
      if (scroll && pagers.length) pagers[0].scrollIntoView({ block: "start" });
    }
    pagers.forEach(function (pager, k) {
      pager.hidden = pages < 2;
      pager.querySelector(".prev").addEventListener("click", function () { show(page - 1, k > 0); });
      pager.querySelector(".next").addEventListener("click", function () { show(page + 1, k > 0); });
    });
    show(0, false);
  }
  document.querySelectorAll(".grid-cards[data-page-size]").forEach(paginate);
})();
