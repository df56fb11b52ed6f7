// colorbatch studio: the grid, the detail view, hints, chroma, save. No dependencies.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const PER = 48;
  const S = {
    info: null, page: 0, pages: 1, total: 0, items: [], focus: 0,
    id: null, meta: null, points: [], chosen: -1, chroma: "auto", reference: null,
    seq: 0, shown: 0, afterUrl: null,
  };

  async function getJSON(url, opts) {
    const r = await fetch(url, opts);
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error || (r.status + " " + r.statusText));
    return body;
  }
  const q = (id) => "id=" + encodeURIComponent(id);
  function showError(msg) { const e = $("error"); e.textContent = msg || ""; e.hidden = !msg; }
  function status(msg) { $("status").textContent = msg; }

  // ---- routing: #page=N (grid) or #img=ID (detail) ----------------------------------
  function route() {
    const h = new URLSearchParams(location.hash.slice(1));
    if (h.has("img")) openImage(h.get("img"));
    else showGrid(parseInt(h.get("page") || "0", 10) || 0);
  }
  window.addEventListener("hashchange", route);

  // ---- grid ----------------------------------------------------------------------------
  async function showGrid(page) {
    $("detail-view").hidden = true;
    $("grid-view").hidden = false;
    S.id = null;
    const data = await getJSON(`/api/images?page=${page}&per=${PER}`);
    S.page = data.page; S.pages = data.pages; S.total = data.total; S.items = data.items;
    $("page-label").textContent = `page ${data.page + 1} of ${data.pages} (${data.total} images)`;
    $("prev-page").disabled = data.page <= 0;
    $("next-page").disabled = data.page >= data.pages - 1;
    const grid = $("grid");
    grid.textContent = "";
    data.items.forEach((it, k) => {
      const card = document.createElement("div");
      card.className = "card"; card.tabIndex = 0; card.dataset.id = it.id;
      const box = document.createElement("div"); box.className = "thumb";
      const img = document.createElement("img");
      img.loading = "lazy"; img.decoding = "async"; img.alt = it.id;
      img.src = "/api/thumb?" + q(it.id);
      box.appendChild(img);
      const cap = document.createElement("div"); cap.className = "cap"; cap.title = it.id;
      if (it.hints) cap.insertAdjacentHTML("beforeend", '<span class="badge">hints</span>');
      if (it.saved) cap.insertAdjacentHTML("beforeend", '<span class="badge">saved</span>');
      if (it.chroma !== "auto") cap.insertAdjacentHTML("beforeend", `<span class="badge">chroma ${it.chroma}</span>`);
      cap.appendChild(document.createTextNode(it.id));
      card.append(box, cap);
      card.addEventListener("click", () => { location.hash = "img=" + encodeURIComponent(it.id); });
      card.addEventListener("focus", () => { S.focus = k; });
      grid.appendChild(card);
    });
    const cards = grid.querySelectorAll(".card");
    if (cards.length) cards[Math.min(S.focus, cards.length - 1)].focus({ preventScroll: true });
  }
  function turnPage(d) {
    const p = S.page + d;
    if (p >= 0 && p < S.pages) { S.focus = 0; location.hash = "page=" + p; }
  }
  $("prev-page").onclick = () => turnPage(-1);
  $("next-page").onclick = () => turnPage(1);

  // ---- detail --------------------------------------------------------------------------
  async function openImage(id) {
    $("grid-view").hidden = true;
    $("detail-view").hidden = false;
    showError("");
    S.id = id; S.chosen = -1;
    let meta;
    try { meta = await getJSON("/api/image?" + q(id)); }
    catch (e) { showError(e.message); return; }
    if (S.id !== id) return;
    S.meta = meta; S.points = meta.points; S.chroma = meta.chroma; S.reference = meta.reference;
    $("name").textContent = id;
    $("dims").textContent = `${meta.width} x ${meta.height} px, network ${meta.net[1]} x ${meta.net[0]}`;
    $("command").textContent = meta.command;
    $("reference").value = meta.reference || "";
    $("saved").textContent = meta.output ? "saved: " + meta.output : "not saved yet";
    const long = Math.max(meta.width, meta.height);
    $("radius").max = Math.max(20, Math.round(long * 0.05));
    if (!S.radiusSet) { $("radius").value = Math.max(3, Math.round(long * 0.01)); }
    $("radius-value").textContent = $("radius").value;
    setChromaUI();
    if (meta.hint_error) showError(meta.hint_error);
    else if (S.points.length && !S.info.accepts_hints) showError("This image has a hint file, but the model takes no hints: " +
      "the preview leaves them out, and colorize with this model would fail on it.");
    $("before").src = "/api/before?" + q(id);
    const seq = ++S.seq;
    const t0 = performance.now();
    const r = await fetch("/api/preview?" + q(id));
    if (!r.ok) { const b = await r.json().catch(() => ({})); showError(b.error || r.statusText); return; }
    setAfter(await r.blob(), seq, performance.now() - t0, r.headers.get("X-Studio-Seconds"));
    drawMarks();
  }

  function setAfter(blob, seq, ms, serverSeconds) {
    if (seq < S.shown) return; // an older answer arriving late
    S.shown = seq;
    const url = URL.createObjectURL(blob);
    const img = $("after");
    const old = S.afterUrl;
    img.onload = () => { if (old) URL.revokeObjectURL(old); img.dataset.seq = String(seq); };
    img.src = url; S.afterUrl = url;
    status(`updated in ${Math.round(ms)} ms` + (serverSeconds ? ` (model ${Math.round(parseFloat(serverSeconds) * 1000)} ms)` : ""));
  }

  async function push() {
    if (!S.id) return;
    const id = S.id, seq = ++S.seq, t0 = performance.now();
    showError("");
    const body = { points: S.points, chroma: S.chroma, reference: S.reference || null };
    const r = await fetch("/api/state?" + q(id), {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    if (S.id !== id) return;
    if (!r.ok) { const b = await r.json().catch(() => ({})); showError(b.error || r.statusText); return; }
    setAfter(await r.blob(), seq, performance.now() - t0, r.headers.get("X-Studio-Seconds"));
    const side = r.headers.get("X-Studio-Sidecar");
    $("saved").textContent = side ? `hints in ${side}; Save to write the output` : "no hints; Save to write the output";
    $("command").textContent = r.headers.get("X-Studio-Command") || "";
  }

  // ---- hints ---------------------------------------------------------------------------
  function drawMarks() {
    const marks = $("marks");
    marks.textContent = "";
    if (!S.meta) return;
    const rect = $("stage").getBoundingClientRect();
    const W = S.meta.width, H = S.meta.height;
    S.points.forEach((p, k) => {
      const d = document.createElement("div");
      d.className = "mark" + (k === S.chosen ? " chosen" : "");
      d.style.left = ((p.x + 0.5) / W * 100) + "%";
      d.style.top = ((p.y + 0.5) / H * 100) + "%";
      const size = Math.max(10, 2 * p.radius / W * rect.width);
      d.style.width = d.style.height = size + "px";
      d.style.background = p.color;
      d.title = `${p.color} at (${p.x}, ${p.y}), radius ${p.radius}`;
      marks.appendChild(d);
    });
    $("hint-count").textContent = S.points.length ? `${S.points.length} hint${S.points.length > 1 ? "s" : ""}` : "no hints";
    $("remove").disabled = S.chosen < 0;
  }
  window.addEventListener("resize", drawMarks);

  $("stage").addEventListener("click", (ev) => {
    if (!S.meta || !S.info.accepts_hints) return;
    const rect = $("stage").getBoundingClientRect();
    const fx = (ev.clientX - rect.left) / rect.width, fy = (ev.clientY - rect.top) / rect.height;
    if (fx < 0 || fy < 0 || fx > 1 || fy > 1) return;
    const W = S.meta.width, H = S.meta.height;
    // a click on a hint chooses it
    const near = S.points.findIndex((p) => {
      const dx = ((p.x + 0.5) / W - fx) * rect.width, dy = ((p.y + 0.5) / H - fy) * rect.height;
      return Math.hypot(dx, dy) <= Math.max(6, p.radius / W * rect.width);
    });
    if (near >= 0) { S.chosen = near; $("color").value = S.points[near].color; drawMarks(); return; }
    const x = Math.min(W - 1, Math.floor(fx * W)), y = Math.min(H - 1, Math.floor(fy * H));
    S.points.push({ x, y, radius: parseFloat($("radius").value), color: $("color").value });
    S.chosen = S.points.length - 1;
    drawMarks();
    push();
  });
  function removeChosen() {
    if (S.chosen < 0) return;
    S.points.splice(S.chosen, 1); S.chosen = -1; drawMarks(); push();
  }
  $("remove").onclick = removeChosen;
  $("clear").onclick = () => { if (S.points.length) { S.points = []; S.chosen = -1; drawMarks(); push(); } };
  $("color").addEventListener("change", () => {
    if (S.chosen >= 0) { S.points[S.chosen].color = $("color").value; drawMarks(); push(); }
  });
  $("radius").addEventListener("input", () => { S.radiusSet = true; $("radius-value").textContent = $("radius").value; });
  $("radius").addEventListener("change", () => {
    if (S.chosen >= 0) { S.points[S.chosen].radius = parseFloat($("radius").value); drawMarks(); push(); }
  });
  $("reference").addEventListener("change", () => { S.reference = $("reference").value.trim() || null; push(); });

  // ---- chroma and the before/after split -------------------------------------------
  function setChromaUI() {
    $("chroma-value").textContent = S.chroma === "auto" ? "auto" : Number(S.chroma).toFixed(2);
    if (S.chroma !== "auto") $("chroma").value = S.chroma;
    else $("chroma").value = 1;
  }
  let chromaTimer = null;
  $("chroma").addEventListener("input", () => {
    S.chroma = parseFloat($("chroma").value); setChromaUI();
    clearTimeout(chromaTimer); chromaTimer = setTimeout(push, 200);
  });
  $("chroma-auto").onclick = () => { S.chroma = "auto"; setChromaUI(); push(); };

  function setSplit(v) {
    $("split").value = v;
    $("after").style.clipPath = `inset(0 0 0 ${v}%)`;
    $("split-line").style.left = `calc(${v}% - 1px)`;
  }
  $("split").addEventListener("input", () => setSplit($("split").value));
  function toggle() {
    const v = parseFloat($("split").value);
    if (v < 100) setSplit(100); else setSplit(0);
  }
  $("toggle").onclick = toggle;

  // ---- navigation and save ------------------------------------------------------------
  async function step(d) {
    if (!S.meta || S.meta.index === null) return;
    const i = S.meta.index + d;
    if (i < 0 || i >= S.info.count) return;
    const page = Math.floor(i / PER);
    const data = await getJSON(`/api/images?page=${page}&per=${PER}`);
    const it = data.items[i - page * PER];
    if (it) { S.focus = i - page * PER; location.hash = "img=" + encodeURIComponent(it.id); }
  }
  $("prev").onclick = () => step(-1);
  $("next").onclick = () => step(1);
  $("back").onclick = () => { location.hash = "page=" + Math.floor((S.meta ? S.meta.index || 0 : 0) / PER); };

  async function save() {
    if (!S.id) return;
    const btn = $("save"); btn.disabled = true; $("saved").textContent = "saving at full resolution...";
    try {
      const r = await getJSON("/api/save?" + q(S.id), { method: "POST" });
      $("saved").textContent = `saved: ${r.output} (${r.seconds} s)`;
      $("command").textContent = r.command;
    } catch (e) { showError(e.message); $("saved").textContent = "not saved"; }
    finally { btn.disabled = false; }
  }
  $("save").onclick = save;

  document.addEventListener("keydown", (ev) => {
    const t = ev.target;
    const typing = t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.isContentEditable);
    if (ev.key === "Escape") { if (!$("detail-view").hidden) $("back").click(); return; }
    if (typing || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (!$("detail-view").hidden) {
      if (ev.key === "ArrowRight" || ev.key === "j") step(1);
      else if (ev.key === "ArrowLeft" || ev.key === "k") step(-1);
      else if (ev.key === "b" || ev.key === " ") toggle();
      else if (ev.key === "Delete" || ev.key === "Backspace") removeChosen();
      else if (ev.key === "s") save();
      else return;
      ev.preventDefault();
      return;
    }
    const cards = Array.from(document.querySelectorAll("#grid .card"));
    if (!cards.length) return;
    const cols = Math.max(1, Math.round($("grid").clientWidth / (cards[0].offsetWidth + 10)));
    let k = S.focus;
    if (ev.key === "ArrowRight") k += 1;
    else if (ev.key === "ArrowLeft") k -= 1;
    else if (ev.key === "ArrowDown") k += cols;
    else if (ev.key === "ArrowUp") k -= cols;
    else if (ev.key === "PageDown") { turnPage(1); ev.preventDefault(); return; }
    else if (ev.key === "PageUp") { turnPage(-1); ev.preventDefault(); return; }
    else if (ev.key === "Enter") { cards[S.focus] && cards[S.focus].click(); ev.preventDefault(); return; }
    else return;
    ev.preventDefault();
    if (k >= cards.length) { turnPage(1); return; }
    if (k < 0) { if (S.page > 0) { S.focus = PER - 1; location.hash = "page=" + (S.page - 1); } return; }
    S.focus = k; cards[k].focus();
  });

  // ---- start ---------------------------------------------------------------------------
  (async () => {
    S.info = await getJSON("/api/info");
    $("where").textContent = `${S.info.folder} -> ${S.info.out}`;
    $("model").textContent = `model ${S.info.model}, size ${S.info.size}`;
    if (!S.info.accepts_hints) {
      $("hints-reason").textContent = S.info.hints_reason; $("hints-reason").hidden = false;
      $("hint-tools").querySelectorAll("input, button").forEach((e) => { e.disabled = true; });
      $("hint-help").textContent = "Hint placement is off for this model (see above).";
      $("stage").classList.add("nohints");
    }
    setSplit(50);
    route();
    // reference photo suggestions: the folder's first images (typing filters them)
    getJSON(`/api/images?page=0&per=500`).then((d) => {
      const list = $("ids");
      d.items.forEach((it) => { const o = document.createElement("option"); o.value = it.id; list.appendChild(o); });
    }).catch(() => {});
  })().catch((e) => showError(e.message));
})();
