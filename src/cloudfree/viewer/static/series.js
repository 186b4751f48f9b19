// cloudfree viewer, series page: the dates as a strip with their cloud cover, the selected
// date, and each composite with how its pixels were made. Talks to series_app.py.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { info: null, current: 0 };

async function getJSON(url) {
  const r = await fetch(url);
  const body = await r.json().catch(() => ({ detail: r.statusText }));
  if (!r.ok) throw new Error(body.detail || r.statusText);
  return body;
}

function styleQuery(extra) {
  return new URLSearchParams({ composite: $("c-composite").value, stretch: $("c-stretch").value,
                               gain: $("c-gain").value, ...extra }).toString();
}

function img(src, alt) {
  const el = document.createElement("img");
  el.alt = alt;
  el.src = src;
  el.onerror = () => { el.replaceWith(Object.assign(document.createElement("div"),
    { className: "error", textContent: "cannot draw " + alt })); };
  return el;
}

function drawStrip() {
  const strip = $("strip");
  strip.replaceChildren();
  for (const d of state.info.dates) {
    const cell = document.createElement("figure");
    cell.className = "date-cell" + (d.index === state.current ? " active" : "");
    cell.onclick = () => select(d.index);
    cell.append(img(`/api/series/date/${d.index}.png?${styleQuery({ max_size: 128 })}`, d.day));
    const cap = document.createElement("figcaption");
    cap.textContent = `${d.day} · cloud …`;
    cell.append(cap);
    strip.append(cell);
    getJSON(`/api/series/cover/${d.index}`).then((c) => {
      cap.textContent = `${d.day} · cloud ${c.cover === null ? "n/a" : Math.round(100 * c.cover) + " %"}`;
    }).catch((e) => { cap.textContent = `${d.day} · ${e.message}`; });
  }
}

function drawComposites() {
  const box = $("composites");
  box.replaceChildren();
  if (!state.info.composites.length) {
    box.append(Object.assign(document.createElement("p"), { className: "muted",
      textContent: "No composite found: run 'cloudfree composite' and give its folder with --predictions." }));
  }
  for (const c of state.info.composites) {
    for (const [kind, label] of [["composite", `${c.name} (${c.method || "composite"}, target ${c.target_date})`],
                                 ["made", `${c.name}: how each pixel was made`]]) {
      if (kind === "made" && !c.made) continue;
      const panel = document.createElement("div");
      panel.className = "panel";
      panel.append(Object.assign(document.createElement("h4"), { textContent: label }));
      const frame = Object.assign(document.createElement("div"), { className: "frame" });
      const q = kind === "made" ? "" : "?" + styleQuery({});
      frame.append(img(`/api/series/${kind}/${c.index}.png${q}`, label));
      panel.append(frame);
      box.append(panel);
    }
  }
}

function select(i) {
  const dates = state.info.dates;
  state.current = Math.max(0, Math.min(dates.length - 1, i));
  const d = dates[state.current];
  $("date-title").textContent = `${d.day}: ${d.name}${d.s1 ? " (+ S1)" : ""}${d.mask_file ? " (mask file)" : ""}`;
  $("date-img").src = `/api/series/date/${d.index}.png?${styleQuery({})}`;
  for (const cell of $("strip").children) cell.classList.toggle("active", cell === $("strip").children[state.current]);
  history.replaceState(null, "", "#date=" + d.day);
}

function redraw() { drawStrip(); drawComposites(); select(state.current); }

async function main() {
  try {
    state.info = await getJSON("/api/series");
  } catch (e) {
    $("series-error").hidden = false;
    $("series-error").textContent = e.message;
    return;
  }
  $("root-info").textContent = `${state.info.root}: ${state.info.dates.length} dates, ${state.info.composites.length} composites`;
  const wanted = new URLSearchParams(location.hash.replace(/^#/, "")).get("date");
  const found = state.info.dates.findIndex((d) => d.day === wanted);
  state.current = found >= 0 ? found : 0;
  for (const id of ["c-composite", "c-stretch", "c-gain"]) $(id).onchange = redraw;
  document.addEventListener("keydown", (e) => {
    if (e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
    if (e.key === "ArrowLeft") select(state.current - 1);
    if (e.key === "ArrowRight") select(state.current + 1);
  });
  redraw();
}

main();
