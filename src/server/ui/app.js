// hearth web UI: the page's frame (pages, the API key, the API helpers). Each page is a module
// with `show()`; every figure comes from the documented API, with the key when one is set.
import * as chat from "./chat.js";
import * as models from "./models.js";
import * as runs from "./runs.js";
import * as bench from "./bench.js";
import * as live from "./live.js";

const PAGES = { chat, models, runs, bench, server: live };
const KEY = "hearth.apiKey";

/** An element with attributes (`on…` are listeners) and children (strings become text). */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else if (name in node && typeof value !== "string") node[name] = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replaces the children of the element with id `id`. */
export function fill(id, ...children) {
  const node = document.getElementById(id);
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
  return node;
}

/** A table: `columns` of {title, num} and rows of cells (nodes or text). */
export function table(columns, rows) {
  return h("table", {},
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : null, scope: "col" }, c.title)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((cell, i) => h("td", { class: columns[i] && columns[i].num ? "num" : null }, cell))))));
}

export function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function when(ms) {
  return ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 16) + " UTC" : "";
}

let keyPrompt = null;

/** Asks for the API key (once at a time); resolves when one was given. */
function askKey(message) {
  if (keyPrompt) return keyPrompt;
  const dialog = document.getElementById("key-dialog");
  const input = document.getElementById("key-input");
  document.getElementById("key-error").textContent = message || "";
  keyPrompt = new Promise((resolve) => {
    const use = () => {
      const key = input.value.trim();
      if (!key) return;
      sessionStorage.setItem(KEY, key);
      dialog.close();
      keyPrompt = null;
      resolve();
    };
    document.getElementById("key-use").onclick = use;
    input.onkeydown = (e) => { if (e.key === "Enter") use(); };
    dialog.showModal();
    input.focus();
  });
  return keyPrompt;
}

/** An API error with the server's message. */
export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

/**
 * `fetch` against this server with the API key; a 401 asks for the key and tries again.
 * `body` (an object) is sent as JSON. Resolves to the Response (ok) or throws ApiError.
 */
export async function request(path, { method, body, signal } = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = {};
    const key = sessionStorage.getItem(KEY);
    if (key) headers.Authorization = `Bearer ${key}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method: method || (body === undefined ? "GET" : "POST"),
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
    if (response.status === 401 && attempt < 5) {
      if (key) sessionStorage.removeItem(KEY);
      await askKey(key ? "That key was refused." : "");
      continue;
    }
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try {
        const err = await response.json();
        message = (err.error && err.error.message) || message;
      } catch (_) { /* not JSON */ }
      throw new ApiError(response.status, message);
    }
    return response;
  }
}

/** `request` reading JSON. */
export async function api(path, options) {
  return (await request(path, options)).json();
}

/** Reads a response body line by line (NDJSON), calling `onLine` with each parsed object. */
export async function readLines(response, onLine) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, cut).trim();
      buffer = buffer.slice(cut + 1);
      if (line) onLine(line);
    }
  }
  if (buffer.trim()) onLine(buffer.trim());
}

/** Server-sent events from a fetch Response (EventSource cannot send the API key). */
export async function sse(response, onData) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).replace(/^ /, "")).join("\n");
      if (data) onData(data);
    }
  }
}

/** Downloads `text` as a file named `name`. */
export function download(name, text, type = "application/json") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

async function status() {
  try {
    const s = await api("/api/status");
    document.getElementById("server-status").textContent =
      `hearth ${s.version} · ${s.models_loaded} loaded · ${s.active_requests} active`;
  } catch (e) {
    document.getElementById("server-status").textContent = `server: ${e.message}`;
  }
}

let current = null;

function route() {
  const name = (location.hash || "#chat").slice(1).split("/")[0];
  const page = PAGES[name] ? name : "chat";
  for (const key of Object.keys(PAGES)) {
    document.getElementById(`page-${key}`).hidden = key !== page;
    const link = document.getElementById(`nav-${key}`);
    if (key === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (current && current !== PAGES[page] && current.hide) current.hide();
  current = PAGES[page];
  current.show();
  status();
}

window.addEventListener("hashchange", route);
route();
setInterval(status, 10000);
