// Chat: streamed answers from one model, or from two side by side (the same message to both,
// each with its own history), with each answer's figures from the server's own timings.
// Conversations are kept in this browser (localStorage) and can be exported as JSON.
import { api, request, sse, h, fill, download } from "./app.js";
import { render } from "./md.js";

const STORE = "hearth.conversations";
const $ = (id) => document.getElementById(id);

let conversations = load();
let current = null;
let controllers = [];
let wired = false;

function load() {
  try { return JSON.parse(localStorage.getItem(STORE)) || []; } catch (_) { return []; }
}

function save() {
  if (current && !conversations.includes(current)) conversations.unshift(current);
  conversations = conversations.filter((c) => c.columns.some((col) => col.messages.length)).slice(0, 50);
  localStorage.setItem(STORE, JSON.stringify(conversations));
  listConversations();
}

function fresh() {
  return { id: String(Date.now()), created: Date.now(), title: "", columns: [] };
}

function columnsFor(conv) {
  const models = [$("chat-model").value, $("chat-model-b").value].filter(Boolean);
  // A conversation keeps its columns once it has messages; a fresh one follows the pickers.
  if (!conv.columns.some((c) => c.messages.length)) {
    conv.columns = models.map((model) => ({ model, messages: [] }));
  }
  return conv.columns;
}

function listConversations() {
  const select = $("chat-history");
  select.replaceChildren(...conversations.map((c) =>
    h("option", { value: c.id, selected: current && c.id === current.id }, c.title || "(empty)")));
}

function figures(msg) {
  const f = msg.figures;
  if (!f) return null;
  const parts = [];
  if (f.ttft_ms !== undefined) parts.push(`TTFT ${Math.round(f.ttft_ms)} ms`);
  if (f.tokens_per_second) parts.push(`${f.tokens_per_second.toFixed(1)} tok/s`);
  if (f.completion_tokens !== undefined) parts.push(`${f.completion_tokens} tokens`);
  if (f.prompt_computed !== undefined) parts.push(`prompt ${f.prompt_computed} computed, ${f.prompt_cached} cached`);
  if (f.draft_n) parts.push(`drafts ${f.draft_accepted}/${f.draft_n} accepted`);
  if (f.finish) parts.push(f.finish);
  return h("div", {
    class: "figures",
    "data-ttft-ms": f.ttft_ms,
    "data-tokens-per-second": f.tokens_per_second,
    "data-finish": f.finish,
  }, parts.join(" · "));
}

function messageNode(msg) {
  if (msg.role === "user") return h("div", { class: "msg user" }, msg.content);
  const body = h("div", { class: "answer" }, render(msg.content));
  const node = h("div", { class: "msg assistant", "aria-busy": msg.streaming ? "true" : "false" },
    msg.model ? h("div", { class: "muted" }, msg.model) : null, body, figures(msg),
    msg.error ? h("div", { class: "error" }, msg.error) : null);
  return node;
}

function draw() {
  const cols = current ? columnsFor(current) : [];
  fill("chat-columns", cols.map((col, i) =>
    h("div", { class: "column", id: `chat-column-${i}`, "aria-live": "polite", "aria-label": `Answers of ${col.model}` },
      h("h2", {}, col.model), col.messages.map(messageNode))));
}

function drawColumn(i) {
  const col = current.columns[i];
  const node = $(`chat-column-${i}`);
  if (!node) return draw();
  node.replaceChildren(h("h2", {}, col.model), ...col.messages.map(messageNode));
  node.scrollTop = node.scrollHeight;
}

function options() {
  const body = {
    temperature: Number($("chat-temperature").value),
    top_p: Number($("chat-top-p").value),
    max_tokens: Number($("chat-max-tokens").value) || undefined,
    stream: true,
    stream_options: { include_usage: true },
  };
  const seed = $("chat-seed").value;
  if (seed !== "") body.seed = Number(seed);
  if ($("chat-json").checked) {
    const schema = JSON.parse($("chat-schema").value);
    body.response_format = { type: "json_schema", json_schema: { name: "answer", schema, strict: true } };
  }
  return body;
}

async function answer(i, base, controller) {
  const col = current.columns[i];
  const history = col.messages.map((m) => ({ role: m.role, content: m.content }));
  const system = $("chat-system").value.trim();
  const msg = { role: "assistant", content: "", streaming: true };
  col.messages.push(msg);
  drawColumn(i);
  const body = { ...base, model: col.model, messages: system ? [{ role: "system", content: system }, ...history] : history };
  const sent = performance.now();
  let firstToken = null;
  let timings = null;
  let usage = null;
  let finish = null;
  let pending = false;
  const redraw = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; drawColumn(i); });
  };
  try {
    const response = await request("/v1/chat/completions", { body, signal: controller.signal });
    await sse(response, (data) => {
      if (data === "[DONE]") return;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message || "the server reported an error");
      if (chunk.model) msg.model = chunk.model;
      const choice = chunk.choices && chunk.choices[0];
      if (choice && choice.delta && choice.delta.content) {
        if (firstToken === null) firstToken = performance.now();
        msg.content += choice.delta.content;
        redraw();
      }
      if (choice && choice.finish_reason) finish = choice.finish_reason;
      if (chunk.timings) timings = chunk.timings;
      if (chunk.usage) usage = chunk.usage;
    });
  } catch (e) {
    if (e.name === "AbortError") finish = "stopped";
    else msg.error = e.message;
  }
  msg.streaming = false;
  msg.figures = {
    ttft_ms: timings ? timings.ttft_ms : firstToken !== null ? firstToken - sent : undefined,
    tokens_per_second: timings ? timings.predicted_per_second : undefined,
    completion_tokens: usage ? usage.completion_tokens : timings ? timings.predicted_n : undefined,
    prompt_computed: timings ? timings.prompt_n : undefined,
    prompt_cached: timings ? timings.cache_n : undefined,
    draft_n: timings ? timings.draft_n : undefined,
    draft_accepted: timings ? timings.draft_n_accepted : undefined,
    finish: finish || undefined,
  };
  drawColumn(i);
}

async function send() {
  const text = $("chat-input").value.trim();
  if (!text || controllers.length) return;
  $("chat-error").textContent = "";
  let base;
  try { base = options(); } catch (e) { $("chat-error").textContent = `The JSON schema does not parse: ${e.message}`; return; }
  if (!current) current = fresh();
  const cols = columnsFor(current);
  if (!cols.length) { $("chat-error").textContent = "Pick a model first."; return; }
  if (!current.title) current.title = text.slice(0, 60);
  for (const col of cols) col.messages.push({ role: "user", content: text });
  $("chat-input").value = "";
  draw();
  controllers = cols.map(() => new AbortController());
  $("chat-stop").disabled = false;
  $("chat-send").disabled = true;
  await Promise.all(cols.map((_, i) => answer(i, base, controllers[i])));
  controllers = [];
  $("chat-stop").disabled = true;
  $("chat-send").disabled = false;
  save();
}

function stop() {
  // Closing the stream is the cancel: the server stops generating and frees the slot.
  for (const c of controllers) c.abort();
}

async function models() {
  const [served, catalog] = await Promise.all([api("/v1/models"), api("/api/catalog")]);
  const ids = served.data.map((m) => m.id);
  const tags = new Set();
  for (const m of catalog.models) if ((m.cached || m.upstream) && !m.shape_model) for (const t of m.tags) tags.add(t);
  const choices = [...ids, ...[...tags].sort().map((t) => `auto:${t}`)];
  for (const [id, blank] of [["chat-model", false], ["chat-model-b", true]]) {
    const select = $(id);
    const keep = select.value;
    select.replaceChildren(...(blank ? [h("option", { value: "" }, "(none)")] : []),
      ...choices.map((c) => h("option", { value: c }, c)));
    if (choices.includes(keep)) select.value = keep;
  }
}

function wire() {
  $("chat-send").addEventListener("click", send);
  $("chat-stop").addEventListener("click", stop);
  $("chat-input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); send(); }
  });
  $("chat-json").addEventListener("change", () => { $("chat-schema-label").hidden = !$("chat-json").checked; });
  $("chat-new").addEventListener("click", () => { current = fresh(); draw(); listConversations(); });
  $("chat-export").addEventListener("click", () => {
    download(`hearth-conversations-${new Date().toISOString().slice(0, 10)}.json`, JSON.stringify(conversations, null, 2));
  });
  $("chat-history").addEventListener("change", (e) => {
    current = conversations.find((c) => c.id === e.target.value) || current;
    draw();
  });
  for (const id of ["chat-model", "chat-model-b"]) $(id).addEventListener("change", () => {
    if (current && current.columns.some((c) => c.messages.length)) current = fresh();
    draw();
  });
}

export async function show() {
  if (!wired) { wire(); wired = true; }
  try { await models(); } catch (e) { $("chat-error").textContent = e.message; }
  if (!current) current = fresh();
  listConversations();
  draw();
}
