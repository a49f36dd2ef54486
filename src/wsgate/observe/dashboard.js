// The wsgate dashboard: one frame a second from /api/events (server-sent events), drawn
// as SVG lines, a backend table and the latest errors with their explanations. No
// library and no network beyond this admin listener. Every text from the gateway goes in
// through textContent: error details carry what clients sent.
"use strict";

const HISTORY = 120; // frames kept: two minutes
const COLORS = ["#1a7f37", "#c81e1e", "#0969da", "#b35900", "#8250df", "#57606a", "#bf3989"];
const STATUS_COLORS = { "101": "#1a7f37", "502": "#b35900", "503": "#c81e1e", "504": "#8250df" };
const history = [];
let frames = 0;

function el(tag, attrs, text) {
  const node = document.createElementNS(
    tag === "svg" || tag === "polyline" || tag === "line" || tag === "text"
      ? "http://www.w3.org/2000/svg" : "http://www.w3.org/1999/xhtml", tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function fmt(value, digits) {
  if (value === null || value === undefined) return "–";
  return Number(value).toFixed(digits === undefined ? 0 : digits);
}

// series: {name: [number|null, ...]} aligned on `history`.
function plot(id, series, colors) {
  const svg = document.getElementById(id);
  const width = 400, height = 160, top = 12, bottom = 4;
  let max = 0;
  for (const values of Object.values(series)) {
    for (const v of values) if (v !== null && v > max) max = v;
  }
  const scale = max > 0 ? max * 1.1 : 1;
  svg.replaceChildren();
  for (const f of [0.25, 0.5, 0.75]) {
    const y = top + (height - top - bottom) * f;
    svg.appendChild(el("line", { class: "grid", x1: 0, x2: width, y1: y, y2: y }));
  }
  svg.appendChild(el("text", { x: 2, y: 10 }, `max ${fmt(max, max < 10 ? 1 : 0)}`));
  svg.setAttribute("data-max", String(max));
  const legend = document.getElementById(id.replace("chart-", "legend-"));
  legend.replaceChildren();
  let index = 0;
  for (const [name, values] of Object.entries(series)) {
    const color = (colors && colors[name]) || COLORS[index++ % COLORS.length];
    const step = width / (HISTORY - 1);
    const offset = HISTORY - values.length;
    const points = [];
    values.forEach((v, i) => {
      if (v === null) return;
      const x = (offset + i) * step;
      const y = height - bottom - (height - top - bottom) * (v / scale);
      points.push(`${x.toFixed(1)},${y.toFixed(1)}`);
    });
    svg.appendChild(el("polyline", {
      points: points.join(" "), stroke: color, "data-series": name,
      "data-points": String(points.length),
    }));
    const item = el("span");
    const swatch = el("i");
    swatch.style.background = color; // CSSOM, which the page's CSP allows
    item.appendChild(swatch);
    const last = values.length ? values[values.length - 1] : null;
    item.appendChild(document.createTextNode(`${name} ${fmt(last, last !== null && last < 10 ? 1 : 0)}`));
    legend.appendChild(item);
  }
}

function series(pick) {
  return history.map((frame) => {
    const v = pick(frame);
    return v === undefined ? null : v;
  });
}

function drawCharts() {
  const statuses = new Set(["101"]);
  for (const f of history) for (const s of Object.keys(f.rates)) statuses.add(s);
  const rates = {};
  for (const s of [...statuses].sort()) rates[s] = series((f) => f.rates[s] || 0);
  plot("chart-rates", rates, STATUS_COLORS);
  plot("chart-tunnels", { tunnels: series((f) => f.tunnels) });
  plot("chart-queue", {
    queue: series((f) => f.queue), "in flight": series((f) => f.inflight),
  });
  plot("chart-latency", {
    p50: series((f) => f.latency_ms.p50), p90: series((f) => f.latency_ms.p90),
    p99: series((f) => f.latency_ms.p99), "queue wait p99": series((f) => f.queue_wait_ms.p99),
  });
  const names = new Set();
  for (const f of history) for (const b of f.backends) names.add(`${b.pool}/${b.name}`);
  const limits = {};
  for (const name of [...names].sort()) {
    limits[name] = series((f) => {
      const b = f.backends.find((x) => `${x.pool}/${x.name}` === name);
      return b ? b.limit : null;
    });
  }
  plot("chart-limits", limits);
}

async function act(name, action) {
  const response = await fetch(`/api/backends/${encodeURIComponent(name)}/${action}`, {
    method: "POST",
  });
  if (!response.ok) alert(`${action} ${name}: ${response.status}`);
}

function drawBackends(frame) {
  const body = document.querySelector("#backends tbody");
  body.replaceChildren();
  for (const b of frame.backends) {
    const row = el("tr", { "data-backend": b.name, "data-pool": b.pool, "data-status": b.status });
    const state = b.status === "ejected" ? `ejected ${fmt(b.ejected_for_s, 1)} s` : b.status.replace("_", " ");
    const cells = [b.pool, b.name, state, fmt(b.limit), fmt(b.inflight), fmt(b.tunnels),
      b.share < 1 ? `${fmt(b.share * 100)} %` : ""];
    cells.forEach((text, i) => row.appendChild(el("td", i === 2 ? { class: "state" } : {}, text)));
    const cell = el("td");
    const button = el("button", { type: "button" }, b.drained ? "enable" : "drain");
    button.addEventListener("click", () => act(b.name, b.drained ? "enable" : "drain"));
    cell.appendChild(button);
    row.appendChild(cell);
    body.appendChild(row);
  }
}

function drawErrors(frame) {
  const list = document.getElementById("errors");
  list.replaceChildren();
  for (const e of frame.errors) {
    const item = el("li", { "data-cause": e.cause });
    const when = new Date(e.time * 1000).toISOString().slice(11, 23);
    item.appendChild(el("span", { class: "cause" }, `${e.status || ""} ${e.cause}`));
    item.appendChild(document.createTextNode(
      ` ${when}${e.pool ? ` · pool ${e.pool}` : ""}${e.backend ? ` · ${e.backend}` : ""}`));
    item.appendChild(el("span", { class: "summary" }, e.summary));
    if (e.detail) item.appendChild(el("span", { class: "detail" }, e.detail));
    if (e.fix) item.appendChild(el("span", { class: "fix" }, `Fix: ${e.fix}`));
    list.appendChild(item);
  }
  const causes = document.querySelector("#causes tbody");
  causes.replaceChildren();
  const sorted = Object.entries(frame.causes).sort((a, b) => b[1] - a[1]);
  for (const [cause, count] of sorted) {
    const row = el("tr", { "data-cause": cause });
    row.appendChild(el("td", {}, cause));
    row.appendChild(el("td", {}, fmt(count)));
    causes.appendChild(row);
  }
}

function draw(frame) {
  history.push(frame);
  while (history.length > HISTORY) history.shift();
  frames += 1;
  const counter = document.getElementById("frames");
  counter.textContent = `${frames} frames`;
  counter.setAttribute("data-frames", String(frames));
  const status = document.getElementById("status");
  status.textContent = frame.ready ? `ready · ${frame.phase}` : `not ready · ${frame.phase}`;
  status.className = `pill ${frame.ready ? "ready" : "not-ready"}`;
  document.getElementById("workers").textContent = `${frame.workers} worker(s)`;
  document.getElementById("reasons").textContent = frame.reasons.join("; ");
  document.getElementById("clock").textContent = new Date(frame.time * 1000).toISOString().slice(11, 19);
  const errorRate = Object.entries(frame.rates)
    .filter(([s]) => s !== "101").reduce((sum, [, v]) => sum + v, 0);
  document.getElementById("num-rate101").textContent = fmt(frame.rates["101"], 1);
  document.getElementById("num-rate-err").textContent = fmt(errorRate, 1);
  document.getElementById("num-tunnels").textContent = fmt(frame.tunnels);
  document.getElementById("num-queue").textContent = `${fmt(frame.queue)} / ${fmt(frame.queue_size)}`;
  document.getElementById("num-queue").setAttribute("data-queue", String(frame.queue));
  document.getElementById("num-wait").textContent =
    `${fmt(frame.queue_wait_ms.p50)} / ${fmt(frame.queue_wait_ms.p99)}`;
  document.getElementById("num-latency").textContent =
    `${fmt(frame.latency_ms.p50, 1)} / ${fmt(frame.latency_ms.p90, 1)} / ${fmt(frame.latency_ms.p99, 1)}`;
  drawCharts();
  drawBackends(frame);
  drawErrors(frame);
}

function connect() {
  const source = new EventSource("/api/events");
  source.onmessage = (event) => draw(JSON.parse(event.data));
  source.onerror = () => {
    const status = document.getElementById("status");
    status.textContent = "disconnected: retrying";
    status.className = "pill not-ready";
  };
}

connect();
