// Generated images with the parameters that made them, newest first, from the server's job history
// (GET /easel/v1/jobs: it survives page reloads and server restarts). The server searches the
// prompts (`q`) and pages (`limit`); this browser only remembers which entries it was asked to hide,
// since a finished job cannot be deleted on the server.
import { get } from "./api.js";

const HIDDEN_KEY = "easel.history.hidden";  // {ids: [job id], before: ms}: hidden jobs, and all created before
const entries = new Map();  // entry id -> entry, from the last list()

localStorage.removeItem("easel.history");  // the images an earlier version kept in the browser

function hidden() {
  try { return { ids: [], before: 0, ...JSON.parse(localStorage.getItem(HIDDEN_KEY)) }; } catch { return { ids: [], before: 0 }; }
}

function saveHidden(h) { localStorage.setItem(HIDDEN_KEY, JSON.stringify({ ids: h.ids.slice(-1000), before: h.before })); }

// One entry per image of a finished job: {id, job, mode, image: URL, params, infotext, time}.
export function entriesOfJob(job) {
  const info = job.result?.info || {};
  return (job.result?.images || []).map((image, i) => ({
    id: `${job.id}:${i}`, job: job.id, mode: job.kind, image, time: job.finished_ms || job.created_ms,
    infotext: info.infotexts?.[i] ?? "",
    params: { ...job.request, seed: info.all_seeds?.[i] ?? job.request?.seed, prompt: info.all_prompts?.[i] ?? job.request?.prompt },
  }));
}

// Finished jobs' images whose prompt contains query (case-insensitive), at most `limit` jobs'.
// Returns {entries, more}: more is true when the server has further matching jobs.
export async function list(query = "", limit = 50) {
  const q = query.trim();
  const h = hidden();
  const skip = new Set(h.ids);
  const res = await get(`/easel/v1/jobs?state=done&limit=${limit}${q ? `&q=${encodeURIComponent(q)}` : ""}`);
  const out = res.jobs.filter((j) => !skip.has(j.id) && j.created_ms > h.before).flatMap(entriesOfJob);
  entries.clear();
  for (const e of out) entries.set(e.id, e);
  return { entries: out, more: res.total > res.jobs.length };
}

export async function find(id) { return entries.get(id); }

export async function remove(id) {
  const h = hidden();
  h.ids.push(entries.get(id)?.job ?? id.split(":")[0]);
  saveHidden(h);
}

// Hides everything made until now (the server keeps it).
export async function clear() { saveHidden({ ids: [], before: Date.now() }); }
