// Runs: the stored history (filtered by model and date), a run's report or several runs'
// multi-run report in a sandboxed frame, the compare verdict of two runs, and people's scores
// of a run's answers (stored as `hearth annotate import` stores them).
import { api, request, h, fill, table, when } from "./app.js";

const $ = (id) => document.getElementById(id);
let listing = { runs: [], tunes: [] };
const selected = new Set();
let wired = false;

function error(message) { $("runs-error").textContent = message || ""; }

function visible() {
  const model = $("runs-model").value.trim().toLowerCase();
  const from = $("runs-from").value ? Date.parse($("runs-from").value) : null;
  const to = $("runs-to").value ? Date.parse($("runs-to").value) + 86400000 : null;
  return listing.runs.filter((r) =>
    (!model || r.models.some((m) => m.toLowerCase().includes(model))) &&
    (from === null || r.run.started_unix_ms >= from) &&
    (to === null || r.run.started_unix_ms < to));
}

function draw() {
  const runs = visible();
  fill("runs-table", runs.length ? table(
    [{ title: "Select" }, { title: "Run" }, { title: "Started" }, { title: "Status" }, { title: "Models" },
      { title: "Requests", num: true }, { title: "Failed", num: true }, { title: "Commit" }],
    runs.map((r) => [
      h("input", { type: "checkbox", checked: selected.has(r.run.id), "aria-label": `Select run ${r.run.id}`, "data-run": r.run.id,
        onchange: (e) => { if (e.target.checked) selected.add(r.run.id); else selected.delete(r.run.id); } }),
      h("code", {}, r.run.id), when(r.run.started_unix_ms), String(r.run.status).toLowerCase(), r.models.join(", "),
      r.requests, r.failed_requests, (r.run.environment && r.run.environment.git_commit) || "",
    ])) : h("p", { class: "muted", id: "runs-empty" }, listing.runs.length ? "No run matches the filters." : "No runs stored yet: start one on the Bench page or with `hearth bench`."),
  listing.tunes.length ? [h("h2", {}, "Tunes"), table([{ title: "Tune" }, { title: "Started" }, { title: "Status" }, { title: "Decision" }, { title: "" }],
    listing.tunes.map((t) => [h("code", {}, t.id), when(t.started_unix_ms), t.status, t.summary,
      h("button", { type: "button", onclick: () => report([t.id]) }, "Open")]))] : null);
}

function chosen(min, max, what) {
  const ids = [...selected].filter((id) => listing.runs.some((r) => r.run.id === id));
  if (ids.length < min || ids.length > max) {
    error(min === max ? `Select exactly ${min} run${min > 1 ? "s" : ""} to ${what}.` : `Select at least ${min} runs to ${what}.`);
    return null;
  }
  error("");
  return ids;
}

async function report(ids) {
  try {
    const html = await (await request(`/api/report?runs=${encodeURIComponent(ids.join(","))}&format=html`)).text();
    // Sandboxed without scripts: a report is hearth's own HTML, but it quotes model answers.
    const frame = h("iframe", { class: "report", sandbox: "", title: `Report of ${ids.join(", ")}`, id: "runs-report" });
    frame.srcdoc = html;
    fill("runs-view", h("h2", {}, ids.length > 1 ? `Multi-run report: ${ids.join(", ")}` : `Report of ${ids[0]}`), frame);
  } catch (e) { error(e.message); }
}

function num(v, digits = 1) { return v === null || v === undefined ? "" : Number(v).toFixed(digits); }

async function compare(ids) {
  try {
    const c = await api(`/api/compare?a=${encodeURIComponent(ids[0])}&b=${encodeURIComponent(ids[1])}`);
    fill("runs-view",
      h("h2", {}, `Compare ${c.a_run} (A) → ${c.b_run} (B)`),
      h("p", { id: "runs-verdict", class: c.regression ? "verdict-regression" : "verdict-improvement" },
        c.regression ? "Regression: see the rows marked regression." : "No regression beyond the noise of these replicates."),
      c.warnings.map((w) => h("p", { class: "muted" }, w)),
      table([{ title: "Model" }, { title: "Level" }, { title: "Metric" }, { title: "A", num: true }, { title: "B", num: true },
        { title: "Change %", num: true }, { title: "Interval", num: true }, { title: "Smallest detectable", num: true },
        { title: "Replicates", num: true }, { title: "Verdict" }],
      c.rows.map((r) => [r.model, r.level, r.metric, num(r.a, 2), num(r.b, 2), num(r.change_pct),
        r.ci_low === null || r.ci_low === undefined ? "" : `${num(r.ci_low)} … ${num(r.ci_high)}`, num(r.detectable),
        r.replicates ? r.replicates.join(" / ") : "",
        h("span", { class: `verdict-${String(r.verdict).toLowerCase()}`, title: r.note || "" }, String(r.verdict).toLowerCase().replace(/_/g, " "))])));
  } catch (e) { error(e.message); }
}

async function annotate(id) {
  try {
    const answers = await api(`/api/runs/${encodeURIComponent(id)}/answers`);
    const rows = answers.rows;
    const annotator = h("input", { id: "annotate-annotator", value: localStorage.getItem("hearth.annotator") || "" });
    const status = h("p", { role: "status", class: "ok", id: "annotate-status" });
    const save = async () => {
      const name = annotator.value.trim();
      if (!name) { error("Say who scored (annotator)."); return; }
      localStorage.setItem("hearth.annotator", name);
      try {
        const stored = await api(`/api/runs/${encodeURIComponent(id)}/annotations`, { body: { annotator: name, rows } });
        error("");
        status.textContent = `Stored ${stored.stored} score(s) for run ${stored.run}.`;
      } catch (e) { error(e.message); }
    };
    fill("runs-view",
      h("h2", {}, `Annotate the answers of ${answers.run}`),
      h("div", { class: "filters" }, h("label", {}, "Annotator", annotator),
        h("button", { type: "button", class: "primary", id: "annotate-save", onclick: save }, "Save scores")),
      status,
      table([{ title: "Model" }, { title: "Prompt" }, { title: "Answer" }, { title: "Judge" }, { title: "Score" }, { title: "Comment" }],
        rows.map((r, i) => [r.model, r.prompt_id,
          h("div", {}, r.response),
          r.judge_score ? `${r.judge_score}: ${r.judge_reason}` : "",
          h("select", { "aria-label": `Score of answer ${i + 1}`, class: "annotate-score", onchange: (e) => { r.score = e.target.value; } },
            ["", "1", "2", "3", "4", "5"].map((s) => h("option", { value: s, selected: r.score === s }, s || "–"))),
          h("input", { "aria-label": `Comment on answer ${i + 1}`, value: r.comment || "", oninput: (e) => { r.comment = e.target.value; } }),
        ])));
  } catch (e) { error(e.message); }
}

async function refresh() {
  try { listing = await api("/api/runs"); error(""); } catch (e) { error(e.message); }
  draw();
}

export async function show() {
  if (!wired) {
    for (const id of ["runs-model", "runs-from", "runs-to"]) {
      $(id).addEventListener("input", draw);
      $(id).addEventListener("change", draw);
    }
    $("runs-open").addEventListener("click", () => { const ids = chosen(1, 1, "open its report"); if (ids) report(ids); });
    $("runs-multi").addEventListener("click", () => { const ids = chosen(2, 99, "see them side by side"); if (ids) report(ids); });
    $("runs-compare").addEventListener("click", () => { const ids = chosen(2, 2, "compare (baseline first)"); if (ids) compare(ids); });
    $("runs-annotate").addEventListener("click", () => { const ids = chosen(1, 1, "annotate"); if (ids) annotate(ids[0]); });
    wired = true;
  }
  await refresh();
  const wanted = location.hash.split("/")[1];
  if (wanted) { selected.clear(); selected.add(wanted); draw(); report([wanted]); }
}
