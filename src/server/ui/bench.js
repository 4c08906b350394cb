// Bench: starts `hearth bench` or `hearth tune` as a server-side job (`POST /api/bench`,
// `POST /api/tune`), follows its progress (`GET /api/jobs/{id}/events`, server-sent events)
// and can cancel it; the stored run (or tune) then opens under Runs.
import { api, request, sse, h, fill } from "./app.js";

const $ = (id) => document.getElementById(id);
const following = new Set();
let wired = false;

function error(message) { $("bench-error").textContent = message || ""; }

function jobNode(id) {
  let node = $(`job-${id}`);
  if (!node) {
    node = h("div", { class: "job panel", id: `job-${id}` });
    $("bench-jobs").prepend(node);
  }
  return node;
}

/** Follows job `id`'s events, redrawing its panel. */
async function follow(job) {
  if (following.has(job.id)) return;
  following.add(job.id);
  const node = jobNode(job.id);
  const models = new Map(); // model -> {done, planned, stage, status}
  const log = [];
  let end = null;
  let run = job.run || null;
  const draw = () => {
    const children = [
      h("h2", {}, `${job.id}: ${job.kind === "tune" ? "tune " : ""}${job.request.models.join(", ")}`),
      h("p", { class: "muted" }, [
        job.request.prompt_set ? `prompt set ${job.request.prompt_set}` : "default prompt set",
        job.request.concurrency && job.request.concurrency.length ? `levels ${job.request.concurrency.join(",")}` : null,
        job.request.rounds ? `${job.request.rounds} rounds` : null,
        job.request.slo ? `SLO ${job.request.slo}` : null,
        job.request.budget ? `budget ${job.request.budget}` : null,
      ].filter(Boolean).join(" · ")),
      [...models].map(([model, m]) => h("div", { class: "row" },
        h("label", {}, `${model}: ${m.status || m.stage || "starting"}`,
          h("progress", { max: m.planned || 1, value: m.done, "aria-label": `Requests of ${model}`, class: "bench-progress", "data-model": model })),
        h("span", { class: "muted" }, `${m.done} / ${m.planned} requests`))),
      end
        ? h("p", { class: end.status === "done" ? "ok" : "error", id: `job-${job.id}-end`, "data-status": end.status },
          `Job ${end.status}.`, end.error ? ` ${end.error}` : "")
        : h("button", { type: "button", id: `job-${job.id}-cancel`, onclick: async () => {
          try { await api(`/api/jobs/${job.id}/cancel`, { body: {} }); } catch (e) { error(e.message); }
        } }, "Cancel"),
      run ? h("p", {}, h("a", { href: `#runs/${run}`, id: `job-${job.id}-run` }, `Open ${run.startsWith("tune") ? "" : "run "}${run}`)) : null,
      h("details", {}, h("summary", {}, "Log"), h("ol", {}, log.slice(-200).map((l) => h("li", {}, l)))),
    ];
    node.replaceChildren(...children.flat().filter(Boolean));
  };
  draw();
  try {
    const response = await request(`/api/jobs/${job.id}/events`);
    await sse(response, (data) => {
      const e = JSON.parse(data);
      const m = e.model ? models.get(e.model) || { done: 0, planned: 0 } : null;
      if (m) models.set(e.model, m);
      switch (e.event) {
        case "model_started": m.planned = e.planned; break;
        case "stage": m.stage = e.stage; break;
        case "request": m.done = e.done; m.planned = e.planned; break;
        case "model_finished": m.status = e.status + (e.error ? `: ${e.error}` : ""); break;
        case "stored": run = e.run; break;
        case "probe": log.push(`probing ${e.config} (${e.rounds} rounds)`); break;
        case "end": end = e; break;
        default: if (e.line) log.push(e.line);
      }
      if (e.run) run = e.run;
      draw();
    });
  } catch (e) { error(e.message); }
  following.delete(job.id);
}

async function start() {
  error("");
  const models = [...document.querySelectorAll("#bench-models input:checked")].map((i) => i.value);
  if (!models.length) { error("Pick at least one model."); return; }
  const levels = $("bench-levels").value.split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  if (levels.some((l) => !Number.isInteger(l) || l < 1)) { error("Concurrency levels are whole numbers from 1, comma-separated."); return; }
  const tune = $("bench-kind-tune").checked;
  const body = { models, prompt_set: $("bench-set").value, concurrency: levels };
  const numbers = [["bench-requests", "requests"], ["bench-max-tokens", "max_tokens"]];
  if (!tune) numbers.push(["bench-rounds", "rounds"]);
  for (const [id, key] of numbers) if ($(id).value) body[key] = Number($(id).value);
  if (tune) {
    if ($("tune-slo").value.trim()) body.slo = $("tune-slo").value.trim();
    if ($("tune-budget").value.trim()) body.budget = $("tune-budget").value.trim();
    const parallel = $("tune-parallel").value.split(",").map((s) => s.trim()).filter(Boolean).map(Number);
    if (parallel.length) body.parallel = parallel;
    body.apply = $("tune-apply").checked;
  }
  try {
    const started = await api(tune ? "/api/tune" : "/api/bench", { body });
    follow({ id: started.id, kind: tune ? "tune" : "bench", request: body });
  } catch (e) { error(e.message); }
}

export async function show() {
  if (!wired) {
    $("bench-start").addEventListener("click", start);
    for (const id of ["bench-kind-bench", "bench-kind-tune"]) $(id).addEventListener("change", () => {
      $("bench-tune-fields").hidden = !$("bench-kind-tune").checked;
      $("bench-rounds").disabled = $("bench-kind-tune").checked;
    });
    wired = true;
  }
  try {
    const served = await api("/v1/models");
    const box = $("bench-models");
    const checked = new Set([...box.querySelectorAll("input:checked")].map((i) => i.value));
    fill("bench-models", served.data.map((m, i) => h("label", { class: "check" },
      h("input", { type: "checkbox", value: m.id, checked: checked.size ? checked.has(m.id) : i === 0 }), m.id)));
    const jobs = await api("/api/jobs");
    for (const job of jobs.jobs.slice().reverse()) if (job.kind === "bench" || job.kind === "tune") follow(job);
  } catch (e) { error(e.message); }
}
