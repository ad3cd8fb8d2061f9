// The queue panel: every queued and running job of the server (whoever submitted it), kept up to
// date from the event stream, each with a Cancel button (DELETE /easel/v1/jobs/{id}). While the
// stream is down, the list is polled instead.
import { get, del } from "./api.js";
import * as events from "./events.js";

const POLL_MS = 3000;
const prompts = new Map();  // job id -> prompt, known or fetched once
let panel, list, count, pollTimer = 0;
let polled = [];  // the unfinished jobs from the last poll, while the stream is down

// The page's own jobs come with their prompt; others' are looked up once.
export function describe(id, prompt) { prompts.set(id, prompt); }

function promptOf(id) {
  if (!prompts.has(id)) {
    prompts.set(id, "");
    get(`/easel/v1/jobs/${id}`).then((job) => { prompts.set(id, job.request?.prompt ?? ""); render(); }).catch(() => {});
  }
  return prompts.get(id);
}

function jobs() {
  const all = events.connected ? events.activeJobs() : polled;
  const order = (j) => (j.state === "running" ? 0 : 1);
  return all.filter((j) => !events.FINAL.has(j.state))
    .map((j, i) => ({ j, i })).sort((a, b) => order(a.j) - order(b.j) || (b.j.priority || 0) - (a.j.priority || 0) || a.i - b.i)
    .map(({ j }) => j);
}

function stateText(job) {
  const p = job.progress || {};
  if (job.state !== "running") return "queued";
  const image = p.images > 1 ? ` · image ${Math.min(p.images, (p.image || 0) + 1)}/${p.images}` : "";
  return p.steps ? `step ${p.step}/${p.steps}${image}` : `running${image}`;
}

// Rows are updated in place, so a Cancel button under the pointer survives progress updates.
function render() {
  const current = jobs();
  const rows = new Map([...list.children].map((li) => [li.dataset.id, li]));
  const wanted = current.map((job) => {
    let li = rows.get(job.id);
    if (!li) {
      li = document.createElement("li");
      li.dataset.id = job.id;
      li.innerHTML = `<span class="state"></span><span class="prompt"></span>
        <button type="button" data-action="cancel-job" class="secondary" title="Cancel this job">Cancel</button>`;
    }
    li.dataset.state = job.state;
    li.querySelector(".state").textContent = stateText(job);
    const prompt = promptOf(job.id);
    li.querySelector(".prompt").textContent = prompt || `${job.kind} ${job.id.slice(0, 8)}`;
    li.querySelector(".prompt").title = prompt;
    return li;
  });
  wanted.forEach((li, i) => { if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null); });
  while (list.children.length > wanted.length) list.lastElementChild.remove();
  const running = current.filter((j) => j.state === "running").length;
  count.textContent = `${running} running · ${current.length - running} queued`;
  panel.hidden = current.length === 0;
}

async function poll() {
  clearTimeout(pollTimer);
  if (events.connected) return;
  try {
    const [running, queued] = await Promise.all([get("/easel/v1/jobs?state=running&limit=20"),
      get("/easel/v1/jobs?state=queued&limit=100")]);
    polled = [...running.jobs, ...queued.jobs.reverse()];  // queued: oldest first
    for (const j of polled) prompts.set(j.id, j.request?.prompt ?? "");
    render();
  } catch { /* the next poll may work */ }
  pollTimer = setTimeout(poll, POLL_MS);
}

export async function cancel(id, button) {
  if (button) button.disabled = true;
  try {
    await del(`/easel/v1/jobs/${id}`);
  } catch (e) {
    if (button) button.disabled = false;
    if (!/409|finished/.test(e.message)) throw e;  // finished meanwhile: nothing to cancel
  }
  if (!events.connected) poll();
}

export function init(root) {
  panel = root;
  list = root.querySelector("ol");
  count = root.querySelector(".count");
  events.subscribe((m) => {
    if (m.type === "job" || m.type === "open") render();
    else if (m.type === "closed") poll();
  });
  if (!events.connected) poll();
}
