// Models: what is loaded (slots, KV use, queue, memory), the catalog with filters and a
// download with a progress bar (`POST /api/pull`, NDJSON), load and unload, and the cache
// (size, sha256, verify, remove).
import { api, request, readLines, sse, h, fill, table, bytes } from "./app.js";

const $ = (id) => document.getElementById(id);
let catalog = null;
let wired = false;
const pulling = new Map(); // alias -> {completed, total}
const VARIANT_TYPES = ["Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "F16"];
const jobs = new Map(); // job id -> {label, status, line}

function error(message) { $("models-error").textContent = message || ""; }

async function act(work) {
  error("");
  try { await work(); } catch (e) { error(e.message); }
  await refresh();
}

async function pull(alias) {
  pulling.set(alias, { completed: 0, total: null });
  drawCatalog();
  try {
    const response = await request("/api/pull", { body: { model: alias } });
    let last = null;
    await readLines(response, (line) => {
      last = JSON.parse(line);
      if (last.status === "downloading") {
        pulling.set(alias, { completed: last.completed, total: last.total });
        const bar = $(`pull-${alias}`);
        if (bar) { bar.max = last.total || 1; bar.value = last.completed; bar.textContent = `${bytes(last.completed)}`; }
        const text = $(`pull-text-${alias}`);
        if (text) text.textContent = last.total ? `${Math.round((100 * last.completed) / last.total)} %` : bytes(last.completed);
      }
    });
    if (!last || last.status !== "success") throw new Error((last && last.error) || "the download ended without a result");
  } catch (e) {
    error(`${alias}: ${e.message}`);
  } finally {
    pulling.delete(alias);
  }
  await refresh();
}

function drawJobs() {
  fill("models-jobs", [...jobs].map(([id, j]) => h("p", { id: `model-job-${id}`, "data-status": j.status, class: j.status === "failed" ? "error" : j.status === "done" ? "ok" : "" },
    `${j.label}: ${j.status}${j.line ? ` (${j.line})` : ""}`)));
}

/** Starts a model-making job (variant or shape model) and follows it to its end. */
async function make(path, body, label) {
  error("");
  try {
    const started = await api(path, { body });
    jobs.set(started.id, { label, status: "running", line: "" });
    drawJobs();
    const response = await request(`/api/jobs/${started.id}/events`);
    await sse(response, (data) => {
      const e = JSON.parse(data);
      const j = jobs.get(started.id);
      if (e.event === "end") { j.status = e.status; if (e.error) j.line = e.error; }
      else if (e.line) j.line = e.line;
      else if (e.event === "writing") j.line = `${bytes(e.written)} of about ${bytes(e.expected)}`;
      drawJobs();
    });
  } catch (e) { error(e.message); }
  await refresh();
}

function filters() {
  return {
    search: $("models-search").value.trim().toLowerCase(),
    tag: $("models-tag").value,
    license: $("models-license").value,
    size: Number($("models-size").value) || null,
    fits: $("models-fits").checked,
    cached: $("models-cached").checked,
  };
}

function drawCatalog() {
  if (!catalog) return;
  const f = filters();
  const rows = catalog.models.filter((m) =>
    (!f.search || m.alias.toLowerCase().includes(f.search) || (m.family || "").toLowerCase().includes(f.search)) &&
    (!f.tag || m.tags.includes(f.tag)) &&
    (!f.license || m.license === f.license) &&
    (!f.size || (m.size_bytes !== null && m.size_bytes !== undefined && m.size_bytes <= f.size)) &&
    (!f.fits || m.fits !== false) &&
    (!f.cached || m.cached));
  fill("models-catalog", table(
    [{ title: "Model" }, { title: "Parameters" }, { title: "Quantisation" }, { title: "Size", num: true },
      { title: "Licence" }, { title: "Tags" }, { title: "Memory", num: true }, { title: "State" }, { title: "Actions" }],
    rows.map((m) => {
      const p = pulling.get(m.alias);
      const state = p
        ? h("span", {}, h("progress", { id: `pull-${m.alias}`, max: p.total || 1, value: p.completed, "aria-label": `Downloading ${m.alias}` }),
          " ", h("span", { id: `pull-text-${m.alias}` }, "starting"))
        : m.loaded ? "loaded" : m.cached ? "downloaded" : m.upstream ? "upstream" : m.downloadable ? "not downloaded" : "no source";
      const actions = [];
      if (!m.cached && !m.upstream && m.downloadable && !p) actions.push(h("button", { type: "button", onclick: () => pull(m.alias), "aria-label": `Download ${m.alias}` }, "Download"));
      if ((m.cached || m.upstream) && !m.loaded) actions.push(h("button", { type: "button", onclick: () => act(() => api("/api/load", { body: { model: m.alias } })), "aria-label": `Load ${m.alias}` }, "Load"));
      if (m.cached && !m.upstream && !m.shape_model) {
        const type = h("select", { "aria-label": `Variant type for ${m.alias}` }, VARIANT_TYPES.map((t) => h("option", { value: t }, t)));
        actions.push(type, h("button", { type: "button", "aria-label": `Make variant of ${m.alias}`,
          onclick: () => make("/api/models/quantize", { model: m.alias, type: type.value }, `${m.alias}@${type.value}`) }, "Make variant"));
      }
      if (m.has_shape) actions.push(h("button", { type: "button", "aria-label": `Make shape model of ${m.alias}`, title: "Random weights in this architecture: real speed and memory, noise for answers",
        onclick: () => make("/api/models/synth", { model: m.alias }, `${m.alias}~shape`) }, "Shape model"));
      if (m.loaded) actions.push(h("button", { type: "button", onclick: () => act(() => api("/api/unload", { body: { model: m.alias } })), "aria-label": `Unload ${m.alias}` }, "Unload"));
      return [
        h("span", { "data-alias": m.alias }, m.alias, m.shape_model ? h("span", { class: "muted" }, " (shape model)") : null),
        m.parameters || "", m.quantization || "", bytes(m.size_bytes), m.license || "", m.tags.join(", "),
        m.memory_bytes ? h("span", { class: m.fits === false ? "error" : "" }, `${bytes(m.memory_bytes)}${m.fits === false ? " (too big)" : ""}`) : "",
        h("span", { class: "state", "data-state": p ? "downloading" : m.loaded ? "loaded" : m.cached ? "cached" : "remote" }, state),
        h("span", { class: "actions" }, actions),
      ];
    })));
}

function drawFilters() {
  const tags = new Set();
  const licenses = new Set();
  for (const m of catalog.models) { m.tags.forEach((t) => tags.add(t)); if (m.license) licenses.add(m.license); }
  for (const [id, values] of [["models-tag", tags], ["models-license", licenses]]) {
    const select = $(id);
    const keep = select.value;
    select.replaceChildren(h("option", { value: "" }, "any"), ...[...values].sort().map((v) => h("option", { value: v }, v)));
    select.value = keep;
  }
}

async function refresh() {
  const [cat, ps, cache, status] = await Promise.all([api("/api/catalog"), api("/api/ps"), api("/api/cache"), api("/api/status")]);
  fill("models-memory", `Server memory: ${bytes(status.resident_bytes)} resident, budget ${bytes(status.memory_budget_bytes)}.`);
  catalog = cat;
  drawFilters();
  drawCatalog();
  fill("models-loaded", ps.models.length ? table(
    [{ title: "Model" }, { title: "Slots", num: true }, { title: "Active", num: true }, { title: "Queued", num: true },
      { title: "KV cells used", num: true }, { title: "Context", num: true }, { title: "File", num: true }, { title: "Placement" }, { title: "Idle", num: true }],
    ps.models.map((m) => [
      h("span", { "data-loaded": m.model }, m.model),
      m.slots, m.active, m.queued,
      m.kv_capacity ? `${m.kv_used} / ${m.kv_capacity}` : m.kv_used,
      m.n_ctx, bytes(m.file_bytes), m.placement, `${Math.round(m.idle_secs)} s`,
    ])) : h("p", { class: "muted", id: "models-none-loaded" }, "No model is loaded; one loads on its first request, or with Load below."));
  fill("models-cache", cache.models.length ? table(
    [{ title: "Model" }, { title: "Size", num: true }, { title: "sha256" }, { title: "Source" }, { title: "Actions" }],
    cache.models.map((m) => [
      m.alias, bytes(m.size_bytes), h("code", { title: m.sha256 }, m.sha256.slice(0, 16) + "…"), m.source,
      h("span", { class: "actions" },
        h("button", { type: "button", "aria-label": `Verify ${m.alias}`, onclick: async () => {
          error("");
          $("models-note").textContent = `verifying ${m.alias}…`;
          try {
            const v = await api("/api/cache/verify", { body: { model: m.alias } });
            $("models-note").textContent = v.outcome.status === "ok" ? `${m.alias}: sha256 verified` : "";
            if (v.outcome.status !== "ok") error(`${m.alias}: ${v.outcome.status}`);
          } catch (e) { $("models-note").textContent = ""; error(e.message); }
        } }, "Verify"),
        h("button", { type: "button", "aria-label": `Remove ${m.alias}`, onclick: () => {
          if (confirm(`Remove ${m.alias} from the cache?`)) act(() => api("/api/cache/remove", { body: { model: m.alias } }));
        } }, "Remove")),
    ])) : h("p", { class: "muted" }, "Nothing downloaded yet."));
}

export async function show() {
  if (!wired) {
    for (const id of ["models-search", "models-tag", "models-license", "models-size", "models-fits", "models-cached"]) {
      // Both: a select reports a pick as `change` (and not always as `input`).
      $(id).addEventListener("input", drawCatalog);
      $(id).addEventListener("change", drawCatalog);
    }
    wired = true;
  }
  try { await refresh(); } catch (e) { error(e.message); }
}
