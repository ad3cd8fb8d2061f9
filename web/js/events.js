// The server's live job events (GET /easel/v1/events, Server-Sent Events): one connection for the
// page, reconnected with a growing delay when it drops. Keeps the latest state of every unfinished
// job so a listener that arrives late (a job that started before its POST answered) still sees it.
const RETRY_MIN_MS = 1000, RETRY_MAX_MS = 30000;

const listeners = new Set();
const active = new Map();  // job id -> its latest job event payload, while queued or running
const finished = new Map();  // job id -> its last payload, for a watcher that asks just after the end
let source = null;
let retryMs = RETRY_MIN_MS;
let retryTimer = 0;
export let connected = false;

export const FINAL = new Set(["done", "failed", "cancelled"]);

// listener(message) gets every message ({type: "job" | "queue" | "preview" | "ping" | "open" | "closed"}).
export function subscribe(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function activeJobs() { return [...active.values()]; }
export function lastKnown(id) { return active.get(id) || finished.get(id) || null; }

function emit(message) {
  for (const l of listeners) {
    try { l(message); } catch (e) { console.warn("event listener:", e); }
  }
}

function onMessage(e) {
  let message;
  try { message = JSON.parse(e.data); } catch { return; }
  if (message.type === "job" && message.job?.id) {
    const job = message.job;
    if (FINAL.has(job.state)) {
      active.delete(job.id);
      finished.set(job.id, job);
      if (finished.size > 200) finished.delete(finished.keys().next().value);
    } else {
      active.set(job.id, job);
    }
  }
  emit(message);
}

export function connect() {
  if (source || typeof EventSource === "undefined") return;
  clearTimeout(retryTimer);
  source = new EventSource("/easel/v1/events");
  source.onopen = () => {
    connected = true;
    retryMs = RETRY_MIN_MS;
    active.clear();  // the server sends every unfinished job again on connect
    emit({ type: "open" });
  };
  source.onmessage = onMessage;
  source.onerror = () => {
    // The browser would retry on its own at a fixed pace; back off instead (and stop on a 404).
    source.close();
    source = null;
    const was = connected;
    connected = false;
    if (was) emit({ type: "closed" });
    retryTimer = setTimeout(connect, retryMs);
    retryMs = Math.min(RETRY_MAX_MS, retryMs * 2);
  };
}
