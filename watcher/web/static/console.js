// The console page: renders the API's lists, follows /api/events, submits, retries and deletes.
// Plain DOM, no framework: every value goes in through textContent, never as HTML.
"use strict";

const $ = (selector) => document.querySelector(selector);
const pages = { done: null, failed: null }; // next-page cursors

async function api(path, options = {}) {
  const response = await fetch(`/api/${path}`, { credentials: "same-origin", ...options });
  if (response.status === 401) {
    window.location.assign("/login");
    throw new Error("unauthorized");
  }
  return response;
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node[key] = value;
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

const seconds = (value) => (value === null || value === undefined ? "…" : `${Number(value).toFixed(0)} s`);

function fieldsOf(request) {
  const keep = { ...(request || {}) };
  delete keep.seed;
  return keep;
}

// -- the lists -----------------------------------------------------------------------------------

function renderDaemons(daemons) {
  $("#daemons").replaceChildren(...daemons.map((d) => el("li", {
    className: d.healthy ? "daemon" : "daemon stale", dataset: { testid: "daemon" },
    title: `version ${d.version || "?"}, heartbeat ${d.heartbeat_age} s ago`,
  }, el("strong", { textContent: d.id }), ` ${d.healthy ? d.state || "" : "not responding"} · `,
     `${d.model || "no model"} · ${d.device || "starting"} · ${Math.round(d.heartbeat_age)} s`)));
}

function runningItem(r) {
  const percent = Math.round((r.progress || 0) * 100);
  return el("li", { dataset: { testid: "running", id: r.id } },
    el("div", { className: "line" }, el("strong", { textContent: r.id }),
      el("span", { className: "meta", textContent: `on ${r.daemon} · batch of ${(r.batch || [r.id]).length}` })),
    el("div", { className: "bar" }, el("progress", { max: 100, value: percent, dataset: { testid: "progress" } }),
      el("span", { textContent: `${percent}% · ${seconds(r.elapsed)} elapsed · ${seconds(r.remaining)} left` })));
}

function waitingItem(w) {
  const awaited = w.missing.length ? ` · waiting for ${w.missing.join(", ")}` : "";
  return el("li", { dataset: { testid: "waiting", id: w.id } },
    el("span", { className: "position", textContent: `#${w.position}` }), el("strong", { textContent: w.id }),
    el("span", { className: "meta", textContent:
      ` priority ${w.priority} · ${w.model || "default model"} · ${w.duration ?? 8} s${awaited}` }));
}

function doneItem(d) {
  const s = d.sidecar || {};
  const request = s.request || {};
  const timings = s.timings || {};
  return el("li", { dataset: { testid: "done", id: d.id } },
    el("div", { className: "line" }, el("strong", { textContent: d.id }),
      el("span", { className: "meta", textContent: ` ${s.model} · seed ${s.seed} · ${s.duration_seconds} s · ${s.format}` })),
    el("p", { className: "prompt", textContent: request.prompt || "(no prompt)" }),
    el("audio", { controls: true, preload: "none", src: `/${d.audio_url}`, dataset: { testid: "player" } }),
    el("div", { className: "actions" },
      el("a", { href: `/${d.audio_url}`, download: s.audio || "", textContent: "Download" }),
      el("button", { textContent: "Same again", onclick: () => resubmit(fieldsOf(request)) }),
      el("button", { textContent: "Copy as JSON", onclick: () => copy(JSON.stringify(request, null, 2)) }),
      el("button", { textContent: "Delete", className: "danger", onclick: () => remove(d.id) })),
    el("p", { className: "meta", textContent:
      `generated in ${timings.generate_seconds} s (load ${timings.load_seconds} s) · finished ${timings.finished_at}` }));
}

function failedItem(f) {
  const error = f.error || {};
  return el("li", { dataset: { testid: "failed", id: f.id } },
    el("div", { className: "line" }, el("strong", { textContent: f.id }),
      el("code", { dataset: { testid: "code" }, textContent: error.code || "?" }),
      error.field ? el("span", { className: "meta", textContent: ` field ${error.field}` }) : null),
    el("p", { className: "message", dataset: { testid: "message" }, textContent: error.message || "" }),
    el("div", { className: "actions" },
      el("button", { textContent: "Retry", dataset: { testid: "retry" }, onclick: () => retry(f.id) }),
      el("button", { textContent: "Delete", className: "danger", onclick: () => remove(f.id) })));
}

const renderers = { running: runningItem, waiting: waitingItem, done: doneItem, failed: failedItem };

async function refresh(state, { more = false } = {}) {
  const cursor = more && pages[state] ? `&cursor=${encodeURIComponent(pages[state])}` : "";
  const body = await (await api(`requests?state=${state}&limit=20${cursor}`)).json();
  const nodes = body.items.map(renderers[state]);
  if (more) $(`#${state}`).append(...nodes);
  else $(`#${state}`).replaceChildren(...nodes);
  if (state in pages) {
    pages[state] = body.next_cursor;
    $(`#${state}-more`).hidden = !body.next_cursor;
  }
}

async function refreshStatus() {
  const status = await (await api("status")).json();
  renderDaemons(status.daemons);
  for (const [state, count] of Object.entries(status.counts)) $(`#${state}-count`).textContent = `(${count})`;
}

const refreshAll = () => Promise.all([refreshStatus(), ...Object.keys(renderers).map((s) => refresh(s))]);

// -- actions -------------------------------------------------------------------------------------

function showErrors(error) {
  for (const node of document.querySelectorAll("#submit .error")) node.textContent = "";
  if (!error) return;
  const slot = document.querySelector(`#submit .error[data-field="${CSS.escape(error.field || "")}"]`)
    || document.querySelector('#submit .error[data-field=""]');
  slot.textContent = `${error.code}: ${error.message}`;
}

async function submitForm(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  for (const [key, value] of [...form.entries()]) {
    if (value === "" || (value instanceof File && !value.name)) form.delete(key);
  }
  const response = await api("requests", { method: "POST", body: form });
  const body = await response.json();
  showErrors(response.ok ? null : body.error);
  if (response.ok) {
    $("#submitted").textContent = `Submitted as ${body.id}.`;
    refreshAll();
  }
}

async function resubmit(fields) {
  const response = await api("requests", { method: "POST", headers: { "Content-Type": "application/json" },
                                           body: JSON.stringify(fields) });
  const body = await response.json();
  $("#submitted").textContent = response.ok ? `Submitted again as ${body.id}.` : body.error.message;
  refreshAll();
}

async function retry(id) {
  await api(`requests/${encodeURIComponent(id)}/retry`, { method: "POST" });
  refreshAll();
}

async function remove(id) {
  if (!window.confirm(`Delete ${id}?`)) return;
  await api(`requests/${encodeURIComponent(id)}`, { method: "DELETE" });
  refreshAll();
}

async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
    $("#submitted").textContent = "Copied.";
  } catch {
    window.prompt("Copy the request:", text);
  }
}

// -- live updates: Server-Sent Events, or polling every second where they do not get through ------

function follow() {
  const source = new EventSource("/api/events");
  const affected = { discovered: ["waiting"], claimed: ["waiting", "running"], done: ["running", "done"],
                     failed: ["running", "waiting", "failed"] };
  for (const [name, states] of Object.entries(affected)) {
    source.addEventListener(name, () => { refreshStatus(); states.forEach((s) => refresh(s)); });
  }
  source.addEventListener("progress", () => refresh("running"));
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED && !window.polling) {
      window.polling = setInterval(refreshAll, 1000);
    }
  };
}

$("#submit").addEventListener("submit", submitForm);
$("#done-more").addEventListener("click", () => refresh("done", { more: true }));
$("#failed-more").addEventListener("click", () => refresh("failed", { more: true }));
refreshAll();
follow();
