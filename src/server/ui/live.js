// Server: live figures from `/metrics` (Prometheus text), read every two seconds while the
// page is open: requests, queue, TTFT and end-to-end quantiles over the last minute (from
// the histograms' bucket counts, as Prometheus' histogram_quantile does), tokens per second
// and KV use, with small charts of the last five minutes.
import { api, request, h, fill, bytes } from "./app.js";

const $ = (id) => document.getElementById(id);
const EVERY_MS = 2000;
const KEEP = 150; // samples: five minutes
const WINDOW_MS = 60000;
const samples = [];
let timer = null;

/** Prometheus text to [{name, labels, value}]. */
function parse(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    if (m[3]) for (const pair of m[3].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

const sum = (metrics, name) => metrics.filter((x) => x.name === name).reduce((a, x) => a + x.value, 0);

/** Cumulative bucket counts of histogram `name`: [[le, count]] in ascending le. */
function buckets(metrics, name) {
  const map = new Map();
  for (const x of metrics) {
    if (x.name !== `${name}_bucket`) continue;
    const le = x.labels.le === "+Inf" ? Infinity : Number(x.labels.le);
    map.set(le, (map.get(le) || 0) + x.value);
  }
  return [...map].sort((a, b) => a[0] - b[0]);
}

/** The q-quantile of the observations between two bucket snapshots (linear within a bucket). */
function quantile(now, before, q) {
  const counts = now.map(([le, c], i) => [le, c - (before && before[i] ? before[i][1] : 0)]);
  const total = counts.length ? counts[counts.length - 1][1] : 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const [le, c] of counts) {
    if (c >= rank) {
      if (le === Infinity) return lower;
      return lower + ((le - lower) * (rank - below)) / Math.max(c - below, 1e-9);
    }
    lower = le;
    below = c;
  }
  return lower;
}

function sample(metrics) {
  const t = Date.now();
  const s = {
    t,
    // Model requests only: the page's own reads of /api and /metrics are not traffic.
    requests: metrics.filter((x) => x.name === "hearth_requests_total" && (x.labels.endpoint || "").startsWith("/v1/"))
      .reduce((a, x) => a + x.value, 0),
    completion: sum(metrics, "hearth_completion_tokens_total"),
    active: sum(metrics, "hearth_active_requests"),
    queued: sum(metrics, "hearth_queue_length"),
    kvUsed: sum(metrics, "hearth_kv_cache_used_cells"),
    kvCapacity: sum(metrics, "hearth_kv_cache_capacity_cells"),
    ttft: buckets(metrics, "hearth_time_to_first_token_seconds"),
    e2e: buckets(metrics, "hearth_request_duration_seconds"),
  };
  const prev = samples[samples.length - 1];
  s.tokensPerSecond = prev ? Math.max(0, (s.completion - prev.completion) / ((t - prev.t) / 1000)) : 0;
  const old = samples.find((x) => t - x.t <= WINDOW_MS) || prev;
  // Over the last minute when anything finished in it, else since the server started.
  const windowed = (key) => {
    const recent = old && quantile(s[key], old[key], 0.5) !== null;
    const base = recent ? old[key] : null;
    return { p50: quantile(s[key], base, 0.5), p95: quantile(s[key], base, 0.95), recent };
  };
  s.ttftQ = windowed("ttft");
  s.e2eQ = windowed("e2e");
  s.kvPct = s.kvCapacity ? (100 * s.kvUsed) / s.kvCapacity : 0;
  samples.push(s);
  if (samples.length > KEEP) samples.shift();
  return s;
}

const ms = (seconds) => (seconds === null || seconds === undefined ? "–" : `${Math.round(seconds * 1000)} ms`);

function figure(label, value, id) {
  return h("div", { class: "tile" }, h("span", { class: "muted" }, label), h("b", { id }, value));
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

/** A line chart of `values` (null gaps skipped) over the samples kept so far (up to five
 * minutes, drawn across the whole width). */
function chart(title, values, unit) {
  const W = 300;
  const H = 100;
  const top = Math.max(1e-9, ...values.filter((v) => v !== null));
  const span = samples.length > 1 ? Math.round((samples[samples.length - 1].t - samples[0].t) / 1000) : 0;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H + 14}`, role: "img", "aria-label": `${title}, last ${span} seconds` });
  root.append(svg("line", { x1: 0, y1: H, x2: W, y2: H }));
  const points = values.map((v, i) => (v === null ? null : `${((i / Math.max(values.length - 1, 1)) * W).toFixed(1)},${(H - (v / top) * (H - 4)).toFixed(1)}`)).filter(Boolean);
  if (points.length > 1) root.append(svg("polyline", { points: points.join(" ") }));
  const label = svg("text", { x: 2, y: H + 12 });
  label.textContent = `last ${span} s · max ${top < 10 ? top.toFixed(2) : Math.round(top)} ${unit}`;
  root.append(label);
  return h("div", { class: "chart", "data-points": points.length }, h("h2", {}, title), root);
}

async function tick() {
  try {
    const [text, status] = await Promise.all([(await request("/metrics")).text(), api("/api/status")]);
    const s = sample(parse(text));
    fill("server-facts", `hearth ${status.version} · pid ${status.pid} · up ${Math.round(status.uptime_secs)} s · ${status.models_loaded} model(s) loaded · ${status.endpoint}`);
    fill("server-tiles",
      figure("Model requests", s.requests, "fig-requests"),
      figure("Active", s.active, "fig-active"),
      figure("Queued", s.queued, "fig-queued"),
      figure(`TTFT p50 / p95${s.ttftQ.recent ? " (1 min)" : ""}`, `${ms(s.ttftQ.p50)} / ${ms(s.ttftQ.p95)}`, "fig-ttft"),
      figure(`E2E p50 / p95${s.e2eQ.recent ? " (1 min)" : ""}`, `${ms(s.e2eQ.p50)} / ${ms(s.e2eQ.p95)}`, "fig-e2e"),
      figure("Tokens/s", s.tokensPerSecond.toFixed(1), "fig-tps"),
      figure("KV use", s.kvCapacity ? `${s.kvUsed} / ${s.kvCapacity} (${s.kvPct.toFixed(0)} %)` : "no model loaded", "fig-kv"),
      figure("Memory (resident / budget)", `${bytes(status.resident_bytes)} / ${bytes(status.memory_budget_bytes)}`, "fig-memory"));
    const series = (key) => samples.map(key);
    fill("server-charts",
      chart("Tokens per second", series((x) => x.tokensPerSecond), "tok/s"),
      chart("Requests active and queued", series((x) => x.active + x.queued), "requests"),
      chart("TTFT p50", series((x) => x.ttftQ.p50 === null ? null : x.ttftQ.p50 * 1000), "ms"),
      chart("KV cache use", series((x) => x.kvPct), "%"));
  } catch (e) {
    fill("server-facts", h("span", { class: "error" }, e.message));
  }
}

export function show() {
  if (!timer) { tick(); timer = setInterval(tick, EVERY_MS); }
}

export function hide() {
  clearInterval(timer);
  timer = null;
}
