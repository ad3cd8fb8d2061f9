// The one place live progress comes from. Today it polls GET /sdapi/v1/progress; the native event
// stream (/easel/v1/events) can replace the body of watchProgress without touching its callers.
import { get } from "./api.js";

// Calls onUpdate({fraction, step, steps, image, images, itPerSec, etaSeconds, text, preview}) while a job
// runs, first at once and then every intervalMs. Returns a function that stops watching.
export function watchProgress(onUpdate, intervalMs = 500) {
  let stopped = false;
  let timer = 0;
  let first = null;  // {time, done}: the first step seen, to measure it/s
  const tick = async () => {
    try {
      const p = await get("/sdapi/v1/progress");
      if (stopped) return;
      const s = p.state || {};
      const steps = s.sampling_steps || 0;
      const done = (s.job_no || 0) * steps + (s.sampling_step || 0);  // steps sampled so far
      const now = performance.now();
      if (steps && !first) first = { time: now, done };
      const elapsed = first ? (now - first.time) / 1000 : 0;
      const itPerSec = first && elapsed > 0 && done > first.done ? (done - first.done) / elapsed : 0;
      onUpdate({
        fraction: p.progress || 0, step: s.sampling_step || 0, steps,
        image: (s.job_no || 0) + 1, images: s.job_count || 1,
        itPerSec, etaSeconds: p.eta_relative || 0, text: p.textinfo || "",
        preview: p.current_image ? `data:image/png;base64,${p.current_image}` : null,
      });
    } catch { /* a missed poll is not worth an error; the next one may work */ }
    if (!stopped) timer = setTimeout(tick, intervalMs);
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}
