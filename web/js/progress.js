// Live progress of one job: from the event stream (events.js) while it is connected, else by
// polling GET /sdapi/v1/progress (A1111's, free of the rate limit) and the job itself. Previews
// show when the server has them: a {"type": "preview"} event (the image from
// /easel/v1/jobs/{id}/preview) or `current_image` in the polled progress; without them, none.
import { get } from "./api.js";
import * as events from "./events.js";

const POLL_MS = 500, JOB_POLL_MS = 1000, QUIET_CHECK_MS = 10000, PREVIEW_MIN_MS = 500;

// Steps sampled so far and in all, for a batch of batchSize images per sampling run.
function stepsDone(p, batchSize) {
  const runs = Math.max(1, Math.ceil((p.images || 1) / batchSize));
  const run = Math.min(runs - 1, Math.floor((p.image || 0) / batchSize));
  const steps = p.steps || 0;
  return { done: run * steps + (p.step || 0), total: runs * steps, runs, run };
}

// Follows job `id` and calls onUpdate({state, fraction, step, steps, image, images, itPerSec,
// etaSeconds, text, preview}) as it changes. Returns {done: Promise of the finished job (as
// GET /easel/v1/jobs/{id}), stop()}.
export function watchJob(id, onUpdate, { batchSize = 1 } = {}) {
  let stopped = false, pollTimer = 0, quietTimer = 0, previewTimer = 0;
  let first = null;  // {time, done}: the first sampling step seen, to measure it/s
  let lastPreviewAt = 0, state = "queued";
  let resolve, reject;
  const done = new Promise((res, rej) => { resolve = res; reject = rej; });

  const finish = async () => {
    if (stopped) return;
    try {
      const job = await get(`/easel/v1/jobs/${id}`);
      if (stopped) return;
      if (!events.FINAL.has(job.state)) return;  // not yet: a later event or poll finishes it
      stop();
      resolve(job);
    } catch (e) {
      stop();
      reject(e);
    }
  };

  const update = (job, extra = {}) => {
    state = job.state;
    const p = job.progress || {};
    const { done: n, total, runs, run } = stepsDone(p, batchSize);
    const now = performance.now();
    if (p.stage === "sample" && p.steps && !first) first = { time: now, done: n };
    const elapsed = first ? (now - first.time) / 1000 : 0;
    const itPerSec = first && elapsed > 0 && n > first.done ? (n - first.done) / elapsed : 0;
    const fraction = total ? Math.min(1, n / total) : 0;
    onUpdate({
      state: job.state, fraction, step: p.step || 0, steps: p.steps || 0,
      image: Math.min(p.images || 1, run * batchSize + 1), images: p.images || 1, runs,
      itPerSec, etaSeconds: itPerSec ? (total - n) / itPerSec : 0,
      text: job.state === "queued" ? "Queued…" : (p.stage === "decode" ? "Decoding…" : "Starting…"),
      ...extra,
    });
    if (events.FINAL.has(job.state)) finish();
  };

  const showPreview = (url) => {
    clearTimeout(previewTimer);
    const wait = lastPreviewAt + PREVIEW_MIN_MS - performance.now();
    if (wait > 0) { previewTimer = setTimeout(() => showPreview(url), wait); return; }
    lastPreviewAt = performance.now();
    if (!stopped) onUpdate({ preview: url, previewOnly: true });
  };

  // While no event arrives for a while (a dropped stream, a missed end), ask for the job itself.
  const quiet = () => {
    clearTimeout(quietTimer);
    quietTimer = setTimeout(() => { finish(); quiet(); }, QUIET_CHECK_MS);
  };

  const unsubscribe = events.subscribe((m) => {
    if (stopped) return;
    if (m.type === "job" && m.job.id === id) { quiet(); update(m.job); }
    else if (m.type === "preview" && m.job === id) showPreview(`/easel/v1/jobs/${id}/preview?seq=${m.seq}`);
    else if (m.type === "open") { stopPolling(); finish(); }  // it may have ended while we were away
    else if (m.type === "closed") poll();
  });

  // Polling, while the event stream is down.
  let lastJobPoll = 0;
  const poll = async () => {
    clearTimeout(pollTimer);
    if (stopped || events.connected) return;
    try {
      if (performance.now() - lastJobPoll >= JOB_POLL_MS) {
        lastJobPoll = performance.now();
        const job = await get(`/easel/v1/jobs/${id}`);
        if (stopped) return;
        update(job);
      }
      if (state === "running") {
        const p = await get("/sdapi/v1/progress");
        if (stopped || state !== "running") return;
        const s = p.state || {};
        // A1111 counts sampling runs (batch count), not images.
        const progress = { image: (s.job_no || 0) * batchSize, images: (s.job_count || 1) * batchSize, step: s.sampling_step || 0,
          steps: s.sampling_steps || 0, stage: s.sampling_steps ? "sample" : "text" };
        update({ id, state, progress }, p.current_image ? { preview: `data:image/jpeg;base64,${p.current_image}` } : {});
      }
    } catch { /* a missed poll is not worth an error; the next one may work */ }
    if (!stopped && !events.connected) pollTimer = setTimeout(poll, POLL_MS);
  };
  const stopPolling = () => clearTimeout(pollTimer);

  function stop() {
    stopped = true;
    unsubscribe();
    clearTimeout(pollTimer);
    clearTimeout(quietTimer);
    clearTimeout(previewTimer);
  }

  const known = events.lastKnown(id);
  if (known) update(known);
  if (events.connected) quiet(); else poll();
  return { done, stop };
}
