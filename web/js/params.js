// Generation parameters: read from and written to a form, and recovered from an image's infotext.
const NUMBERS = new Set(["steps", "cfg_scale", "width", "height", "seed", "batch_size", "n_iter",
  "denoising_strength", "mask_blur", "inpainting_fill"]);
const BOOLEANS = new Set(["inpaint_full_res"]);
const FIELDS = ["prompt", "negative_prompt", "sampler_name", "scheduler", ...NUMBERS, ...BOOLEANS];

// The A1111 request fields the form holds.
export function readParams(form) {
  const params = {};
  for (const name of FIELDS) {
    const el = form.elements[name];
    if (!el) continue;
    if (NUMBERS.has(name)) params[name] = Number(el.value);
    else if (BOOLEANS.has(name)) params[name] = el.value === "true";
    else params[name] = el.value;
  }
  return params;
}

// Sets the fields params has; a select gets an option matched by value or label, added if missing.
export function writeParams(form, params) {
  for (const name of FIELDS) {
    const el = form.elements[name];
    if (!el || params[name] === undefined || params[name] === null) continue;
    const value = String(params[name]);
    if (el.tagName === "SELECT") {
      const lower = value.toLowerCase();
      let option = [...el.options].find((o) => o.value.toLowerCase() === lower || o.text.toLowerCase() === lower);
      if (!option) el.add(option = new Option(value, value));
      el.value = option.value;
    } else {
      el.value = value;
    }
  }
}

// Request fields from /sdapi/v1/png-info's `parameters` (A1111 infotext keys).
export function paramsFromInfotext(p) {
  const out = { prompt: p.Prompt ?? "", negative_prompt: p["Negative prompt"] ?? "" };
  const keys = { Steps: "steps", Sampler: "sampler_name", "Schedule type": "scheduler", "CFG scale": "cfg_scale",
    Seed: "seed", "Denoising strength": "denoising_strength", "Mask blur": "mask_blur" };
  for (const [key, field] of Object.entries(keys)) if (p[key] !== undefined) out[field] = p[key];
  const size = /^(\d+)x(\d+)$/.exec(p.Size || "");
  if (size) [out.width, out.height] = [Number(size[1]), Number(size[2])];
  return out;
}

// One line for a gallery card: "Euler a · 20 steps · CFG 7 · 512x512 · seed 1".
// Fields a request left out (an API client's) are left out here too.
export function summary(p) {
  const parts = [p.sampler_name, p.steps != null && `${p.steps} steps`, p.cfg_scale != null && `CFG ${p.cfg_scale}`,
    p.width && p.height && `${p.width}x${p.height}`, p.seed != null && `seed ${p.seed}`];
  return parts.filter(Boolean).join(" · ");
}
