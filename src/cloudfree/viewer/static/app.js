// cloudfree viewer: plain JavaScript, no build step. Talks to the JSON/PNG API of app.py.
// State lives in the URL hash (#patch=ID&composite=..&stretch=..), so every view has a permalink.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  info: null,
  list: [],          // filtered patch summaries
  current: null,     // id of the patch shown
  detail: null,      // /api/patch/{id}
  generation: 0,     // drops answers to superseded requests
};
const FILTERS = ["split", "season", "scene", "completeness"];

async function getJSON(url) {
  const r = await fetch(url);
  const body = await r.json().catch(() => ({ detail: r.statusText }));
  if (!r.ok) throw new Error(body.detail || r.statusText);
  return body;
}

function styleQuery() {
  const q = new URLSearchParams({
    composite: $("c-composite").value,
    stretch: $("c-stretch").value,
    gain: $("c-gain").value,
    plo: $("c-plo").value,
    phi: $("c-phi").value,
  });
  return q.toString();
}

// ------------------------------------------------------------------ hash (permalink) state
function readHash() {
  return new URLSearchParams(location.hash.replace(/^#/, ""));
}

function writeHash(replace) {
  const h = new URLSearchParams();
  if (state.current) h.set("patch", state.current);
  for (const k of ["composite", "stretch", "gain"]) h.set(k, $("c-" + k).value);
  if ($("c-stretch").value === "percentile") { h.set("plo", $("c-plo").value); h.set("phi", $("c-phi").value); }
  if ($("c-overlay").checked) h.set("overlay", "1");
  for (const k of FILTERS) { const v = $("f-" + k).value; if (v && v !== "any") h.set(k, v); }
  if (+$("f-cloud-min").value > 0) h.set("cmin", $("f-cloud-min").value);
  if (+$("f-cloud-max").value < 100) h.set("cmax", $("f-cloud-max").value);
  const url = "#" + h.toString();
  if (replace) history.replaceState(null, "", url); else history.pushState(null, "", url);
  $("permalink").href = url;
}

function applyHash() {
  const h = readHash();
  for (const k of ["composite", "stretch", "gain", "plo", "phi"]) if (h.has(k)) $("c-" + k).value = h.get(k);
  $("c-overlay").checked = h.get("overlay") === "1";
  for (const k of FILTERS) $("f-" + k).value = h.get(k) || (k === "completeness" ? "any" : "");
  $("f-cloud-min").value = h.get("cmin") || 0;
  $("f-cloud-max").value = h.get("cmax") || 100;
  syncStretchControls();
  return h;
}

// ------------------------------------------------------------------ filters and the list
function fillSelect(sel, values) {
  for (const v of values) {
    const o = document.createElement("option");
    o.value = v; o.textContent = v; sel.appendChild(o);
  }
}

async function loadList() {
  const q = new URLSearchParams();
  for (const k of FILTERS) { const v = $("f-" + k).value; if (v) q.set(k, v); }
  q.set("cloud_min", Math.min(1, Math.max(0, $("f-cloud-min").value / 100)));
  q.set("cloud_max", Math.min(1, Math.max(0, $("f-cloud-max").value / 100)));
  $("count").textContent = "filtering…";
  try {
    const res = await getJSON("/api/patches?" + q);
    $("list-error").hidden = true;
    state.list = res.patches;
  } catch (e) {
    $("list-error").textContent = e.message; $("list-error").hidden = false;
    state.list = [];
  }
  renderList();
}

function renderList() {
  const ul = $("patch-list");
  ul.replaceChildren();
  for (const p of state.list) {
    const li = document.createElement("li");
    li.dataset.id = p.id;
    li.title = `${p.id} (${p.split}; ${p.kinds.join(", ")})`;
    li.textContent = p.id;
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = p.complete ? p.split : `${p.split} · ${p.kinds.length}/3`;
    li.appendChild(tag);
    li.addEventListener("click", () => showPatch(p.id));
    if (p.id === state.current) li.classList.add("active");
    ul.appendChild(li);
  }
  $("count").textContent = `${state.list.length} of ${state.info.patches} patches`;
}

function markActive() {
  for (const li of $("patch-list").children) {
    const on = li.dataset.id === state.current;
    li.classList.toggle("active", on);
    if (on) li.scrollIntoView({ block: "nearest" });
  }
}

// ------------------------------------------------------------------ one patch
function makePanel(key, title) {
  const div = document.createElement("div");
  div.className = "panel"; div.dataset.layer = key;
  const h = document.createElement("h4"); h.textContent = title;
  const frame = document.createElement("div"); frame.className = "frame";
  div.append(h, frame);
  return div;
}

// Fetch an image; on failure put the server's message where the image would be.
async function loadInto(frame, url, gen) {
  frame.replaceChildren();
  try {
    const r = await fetch(url);
    if (!r.ok) {
      const body = await r.json().catch(() => ({ detail: r.statusText }));
      throw new Error(`${r.status}: ${body.detail || r.statusText}`);
    }
    const blob = await r.blob();
    if (gen !== state.generation) return null;
    const img = document.createElement("img");
    img.src = URL.createObjectURL(blob);
    await img.decode().catch(() => {});
    frame.replaceChildren(img);
    return img.src;
  } catch (e) {
    if (gen !== state.generation) return null;
    const err = document.createElement("div");
    err.className = "error"; err.textContent = e.message;
    frame.replaceChildren(err);
    return null;
  }
}

function layerUrl(id, layer) {
  const base = `/api/patch/${encodeURIComponent(id)}`;
  if (layer.startsWith("pred:")) return `${base}/pred/${encodeURIComponent(layer.slice(5))}.png?${styleQuery()}`;
  if (layer.startsWith("error:")) return `${base}/error/${encodeURIComponent(layer.slice(6))}.png`;
  if (layer.startsWith("unc:")) return `${base}/uncertainty/${encodeURIComponent(layer.slice(4))}.png`;
  const overlay = layer === "cloudy" && $("c-overlay").checked ? "&overlay=1" : "";
  return `${base}/${layer}.png?${styleQuery()}${overlay}`;
}

function panelLayers(d) {
  const layers = [["cloudy", "cloudy input"], ["target", "target (cloud-free)"], ["s1", "S1 (VV, VH, VV/VH)"],
                  ["mask", "cloud / shadow mask"], ["inpainted", "inpainted (mask-fill, the hybrid's input)"]];
  for (const m of d.predictions) layers.push([`pred:${m}`, `prediction: ${m}`]);
  if (d.kinds.includes("s2")) for (const m of d.predictions) layers.push([`error:${m}`, `error: ${m}`]);
  for (const m of d.uncertainty || []) layers.push([`unc:${m}`, `uncertainty (std): ${m}`]);
  return layers;
}

async function showPatch(id, push = true) {
  showView("patch");
  state.current = id;
  const gen = ++state.generation;
  writeHash(!push);
  markActive();
  $("patch-title").textContent = id;
  let d;
  try {
    d = await getJSON(`/api/patch/${encodeURIComponent(id)}`);
  } catch (e) {
    $("patch-meta").textContent = ""; $("panels").replaceChildren();
    const err = document.createElement("div"); err.className = "error"; err.textContent = e.message;
    $("panels").appendChild(err);
    return;
  }
  if (gen !== state.generation) return;
  state.detail = d;
  const cloud = d.cloud === null ? "cloud cover unknown" : `cloud + shadow ${(100 * d.cloud).toFixed(1)} %`;
  $("patch-meta").textContent = `${d.split} · ${d.season} · ${d.kinds.join(", ")} · ${cloud}`;
  fillCompare(d);
  drawPanels();
  drawMetrics(d);
}

function drawPanels() {
  const d = state.detail; if (!d) return;
  const gen = state.generation;
  const panels = $("panels");
  panels.replaceChildren();
  for (const [key, title] of panelLayers(d)) {
    const p = makePanel(key, title);
    panels.appendChild(p);
    loadInto(p.querySelector(".frame"), layerUrl(d.id, key), gen);
  }
  drawCompare();
}

// ------------------------------------------------------------------ before / after slider
function fillCompare(d) {
  const before = $("cmp-before"), after = $("cmp-after");
  const keepB = before.value, keepA = after.value;
  before.replaceChildren(); after.replaceChildren();
  const opts = [["cloudy", "cloudy input"], ["target", "target"], ["s1", "S1"]];
  for (const m of d.predictions) opts.push([`pred:${m}`, m]);
  for (const [v, t] of opts) {
    before.appendChild(new Option(t, v));
    after.appendChild(new Option(t, v));
  }
  before.value = opts.some(([v]) => v === keepB) ? keepB : "cloudy";
  const defAfter = d.predictions.length ? `pred:${d.predictions[0]}` : "target";
  after.value = opts.some(([v]) => v === keepA) ? keepA : defAfter;
}

async function setCompareImage(img, layer, gen) {
  const r = await fetch(layerUrl(state.detail.id, layer));
  if (gen !== state.generation) return null;
  if (!r.ok) {
    const body = await r.json().catch(() => ({ detail: r.statusText }));
    img.removeAttribute("src");
    return `${layer}: ${r.status}: ${body.detail}`;
  }
  img.src = URL.createObjectURL(await r.blob());
  await img.decode().catch(() => {});
  return null;
}

async function drawCompare() {
  if (!state.detail) return;
  const gen = state.generation;
  const errs = await Promise.all([
    setCompareImage($("cmp-img-before"), $("cmp-before").value, gen),
    setCompareImage($("cmp-img-after"), $("cmp-after").value, gen),
  ]);
  const msg = errs.filter(Boolean).join("; ");
  $("cmp-error").textContent = msg; $("cmp-error").hidden = !msg;
  moveSlider();
}

function moveSlider() {
  const v = +$("slider").value;
  // the "after" image shows right of the split line, the "before" image left of it
  $("cmp-img-after").style.clipPath = `inset(0 0 0 ${v}%)`;
  $("cmp-line").style.left = `${v}%`;
}

// ------------------------------------------------------------------ metrics
function drawMetrics(d) {
  const box = $("metrics");
  const methods = Object.keys(d.metrics);
  if (!methods.length) { box.className = "muted"; box.textContent = "no metrics for this patch"; return; }
  const first = ["mae", "rmse", "psnr", "ssim", "sam", "cloud_fraction", "shadow_fraction"];
  const keys = new Set();
  for (const m of methods) for (const k of Object.keys(d.metrics[m])) keys.add(k);
  const cols = [...first.filter((k) => keys.has(k)), ...[...keys].filter((k) => !first.includes(k)).sort()];
  const table = document.createElement("table"); table.className = "metrics";
  const head = table.insertRow();
  for (const c of ["method", ...cols]) { const th = document.createElement("th"); th.textContent = c; head.appendChild(th); }
  for (const m of methods) {
    const row = table.insertRow();
    row.insertCell().textContent = m;
    for (const c of cols) {
      const v = d.metrics[m][c];
      row.insertCell().textContent = v === undefined || v === null || Number.isNaN(v) ? "–" : (+v).toPrecision(4);
    }
  }
  box.className = ""; box.replaceChildren(table);
}

// ------------------------------------------------------------------ navigation
function step(delta) {
  if (!state.list.length) return;
  const i = state.list.findIndex((p) => p.id === state.current);
  const j = i < 0 ? 0 : Math.min(state.list.length - 1, Math.max(0, i + delta));
  if (state.list[j].id !== state.current) showPatch(state.list[j].id);
}

function onKey(e) {
  const t = e.target;
  if (t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA")) return;
  if (e.altKey || e.ctrlKey || e.metaKey) return;
  if (e.key === "ArrowRight" || e.key === "j") { step(1); e.preventDefault(); }
  else if (e.key === "ArrowLeft" || e.key === "k") { step(-1); e.preventDefault(); }
}

function syncStretchControls() {
  const pct = $("c-stretch").value === "percentile";
  $("pct-box").hidden = !pct; $("gain-box").hidden = pct;
  $("gain-out").textContent = $("c-gain").value;
}

function showView(which) {
  $("patch-view").hidden = which !== "patch";
  $("scene-view").hidden = which !== "scene";
}

// ------------------------------------------------------------------ scenes: tiled pan/zoom view
const scene = { info: null, scale: 1, ox: 0, oy: 0, tiles: new Map(), errors: 0 };

async function showScene(sid, push = true) {
  showView("scene");
  if (push) history.pushState(null, "", "#scene=" + encodeURIComponent(sid));
  scene.tiles.clear(); scene.errors = 0;
  $("scene-status").textContent = "";
  try {
    scene.info = await getJSON(`/api/scene/${encodeURIComponent(sid)}`);
  } catch (e) {
    scene.info = null; $("scene-title").textContent = sid;
    $("scene-status").textContent = e.message; drawScene();
    return;
  }
  $("scene-title").textContent = `${scene.info.name} (${scene.info.method}, ${scene.info.width} × ${scene.info.height})`;
  // A prediction beside its input (a before/after divider) and under its mask, when known.
  const layers = scene.info.layers || {};
  $("scene-split-box").hidden = !layers.input;
  $("scene-mask-box").hidden = !layers.mask;
  if (!layers.mask) $("scene-mask").checked = false;
  fitScene();
}

function fitScene() {
  const c = $("scene-canvas"), s = scene.info; if (!s) return;
  scene.scale = Math.min(c.width / s.width, c.height / s.height);
  scene.ox = (s.width - c.width / scene.scale) / 2;
  scene.oy = (s.height - c.height / scene.scale) / 2;
  drawScene();
}

function drawScene() {
  const c = $("scene-canvas"), ctx = c.getContext("2d");
  ctx.fillStyle = "#20252a"; ctx.fillRect(0, 0, c.width, c.height);
  const s = scene.info; if (!s) return;
  const layers = s.layers || {};
  drawTiles(ctx, "scene");
  if (layers.input) {
    // Before/after: the input left of the divider, the prediction right of it.
    const at = c.width * Number($("scene-split").value) / 100;
    ctx.save(); ctx.beginPath(); ctx.rect(0, 0, at, c.height); ctx.clip();
    drawTiles(ctx, "input");
    ctx.restore();
    ctx.fillStyle = "#ffd24a"; ctx.fillRect(at - 1, 0, 2, c.height);
  }
  if (layers.mask && $("scene-mask").checked) drawTiles(ctx, "mask");
}

function drawTiles(ctx, layer) {
  const c = $("scene-canvas"), s = scene.info;
  const z = Math.max(0, Math.min(s.max_zoom, s.max_zoom + Math.ceil(Math.log2(scene.scale) - 1e-9)));
  const f = 2 ** (s.max_zoom - z), span = s.tile * f;       // source pixels per tile
  const x0 = Math.max(0, Math.floor(scene.ox / span)), y0 = Math.max(0, Math.floor(scene.oy / span));
  const x1 = Math.min(Math.ceil(s.width / span) - 1, Math.floor((scene.ox + c.width / scene.scale) / span));
  const y1 = Math.min(Math.ceil(s.height / span) - 1, Math.floor((scene.oy + c.height / scene.scale) / span));
  const q = styleQuery() + (layer === "scene" ? "" : `&layer=${layer}`);
  for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) {
    const key = `${z}/${x}/${y}.png?${q}`;
    let t = scene.tiles.get(key);
    if (!t) {
      t = new Image();
      t.onload = drawScene;
      t.onerror = () => { scene.errors++; $("scene-status").textContent = `${scene.errors} tile(s) failed`; };
      t.src = `/api/scene/${encodeURIComponent(s.id)}/tile/${key}`;
      scene.tiles.set(key, t);
    }
    if (t.complete && t.naturalWidth) {
      ctx.imageSmoothingEnabled = layer !== "mask" && scene.scale * f < 2;
      ctx.drawImage(t, (x * span - scene.ox) * scene.scale, (y * span - scene.oy) * scene.scale,
                    t.naturalWidth * f * scene.scale, t.naturalHeight * f * scene.scale);
    }
  }
}

function zoomAt(factor, cx, cy) {
  const sx = scene.ox + cx / scene.scale, sy = scene.oy + cy / scene.scale;
  scene.scale = Math.min(16, Math.max(1e-3, scene.scale * factor));
  scene.ox = sx - cx / scene.scale; scene.oy = sy - cy / scene.scale;
  drawScene();
}

function initSceneView() {
  const c = $("scene-canvas");
  let drag = null;
  c.addEventListener("pointerdown", (e) => { drag = { x: e.clientX, y: e.clientY }; c.setPointerCapture(e.pointerId); });
  c.addEventListener("pointermove", (e) => {
    if (!drag) return;
    scene.ox -= (e.clientX - drag.x) / scene.scale; scene.oy -= (e.clientY - drag.y) / scene.scale;
    drag = { x: e.clientX, y: e.clientY }; drawScene();
  });
  c.addEventListener("pointerup", () => { drag = null; });
  c.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = c.getBoundingClientRect();
    zoomAt(e.deltaY < 0 ? 1.25 : 0.8, (e.clientX - r.left) * c.width / r.width, (e.clientY - r.top) * c.height / r.height);
  }, { passive: false });
  $("zoom-in").onclick = () => zoomAt(2, c.width / 2, c.height / 2);
  $("zoom-out").onclick = () => zoomAt(0.5, c.width / 2, c.height / 2);
  $("zoom-fit").onclick = fitScene;
  $("scene-split").oninput = drawScene;
  $("scene-mask").onchange = drawScene;
  $("scene-back").onclick = () => { if (state.current) showPatch(state.current); else showView("patch"); };
}

// ------------------------------------------------------------------ start
async function route(push) {
  const h = applyHash();
  if (h.has("scene")) return showScene(h.get("scene"), false);
  await loadList();
  const id = h.get("patch") || (state.list[0] && state.list[0].id);
  if (id) await showPatch(id, push);
}

async function main() {
  try {
    state.info = await getJSON("/api/info");
  } catch (e) {
    $("list-error").textContent = e.message; $("list-error").hidden = false; return;
  }
  const info = state.info;
  $("root-info").textContent = `${info.root} · ${info.patches} patches` +
    (info.methods.length ? ` · predictions: ${info.methods.join(", ")}` : "");
  fillSelect($("f-split"), info.splits);
  fillSelect($("f-season"), info.seasons);
  fillSelect($("f-scene"), info.scenes);
  if (info.scene_files.length) {
    $("scenes-box").hidden = false;
    for (const s of info.scene_files) {
      const li = document.createElement("li");
      li.textContent = `${s.method}: ${s.name}`; li.dataset.id = s.id;
      li.addEventListener("click", () => showScene(s.id));
      $("scene-list").appendChild(li);
    }
  }
  $("filters").addEventListener("change", async () => { await loadList(); writeHash(true); });
  $("filters").addEventListener("submit", (e) => e.preventDefault());
  for (const id of ["c-composite", "c-stretch", "c-gain", "c-plo", "c-phi", "c-overlay"]) {
    $(id).addEventListener("change", () => {
      syncStretchControls(); writeHash(true);
      if (!$("scene-view").hidden) drawScene(); else drawPanels();
    });
  }
  $("c-gain").addEventListener("input", syncStretchControls);
  $("cmp-before").addEventListener("change", drawCompare);
  $("cmp-after").addEventListener("change", drawCompare);
  $("slider").addEventListener("input", moveSlider);
  $("prev").onclick = () => step(-1);
  $("next").onclick = () => step(1);
  document.addEventListener("keydown", onKey);
  window.addEventListener("popstate", () => route(false));
  initSceneView();
  await route(false);
  document.body.dataset.ready = "1";
}

main();
