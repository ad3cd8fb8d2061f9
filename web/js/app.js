// The page: tabs, the generation forms, progress, gallery, models, settings and PNG info.
import { get, post, readAsDataUrl } from "./api.js";
import * as events from "./events.js";
import { watchJob } from "./progress.js";
import * as history from "./history.js";
import * as queue from "./queue.js";
import { readParams, writeParams, paramsFromInfotext, summary } from "./params.js";
import { MaskEditor } from "./mask.js";

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

const forms = { txt2img: $("form[data-mode=txt2img]"), img2img: $("form[data-mode=img2img]") };
const ui = JSON.parse(localStorage.getItem("easel.ui") || "{}");  // theme, history_limit (gallery page size)
const pageJobs = new Map();  // the jobs this page submitted and follows, oldest first: id -> {mode, tab, params}
let mask;
let pngInfoParams = null;
let galleryJobs = 0;  // jobs the gallery asks for: a page size, more with each "Show more"

// ---- tabs and messages ---------------------------------------------------------------------------

function activeTab() { return $(".tabs [aria-selected=true]").dataset.tab; }

function showTab(name) {
  for (const b of $$(".tabs button")) b.setAttribute("aria-selected", String(b.dataset.tab === name));
  for (const s of $$(".tab")) s.hidden = s.id !== `tab-${name}`;
  if (name === "gallery") renderGallery();
  if (name === "models") renderModels();
}

let noticeTimer = 0;
function showError(message) {
  const el = $("#notice");
  el.textContent = message;
  el.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { el.hidden = true; }, 8000);
}

// ---- generation ----------------------------------------------------------------------------------

function formatSeconds(s) {
  return s >= 60 ? `${Math.floor(s / 60)}m ${Math.round(s % 60)}s` : `${s.toFixed(s < 1 ? 2 : 1)}s`;
}

// The bar follows the oldest job of this page that has not finished (the one the queue runs first).
function shownJob() { return pageJobs.keys().next().value; }

function setPreview(tab, url) {
  const preview = $(".preview", tab);
  if (!url) { preview.hidden = true; preview.removeAttribute("src"); return; }
  preview.onload = () => { preview.hidden = false; };
  preview.onerror = () => { preview.hidden = true; };  // no preview on this server (yet)
  preview.src = url;
}

function showProgress(p, tab) {
  if (p.preview) setPreview(tab, p.preview);
  const el = $("#progress");
  el.hidden = false;
  el.dataset.state = p.state === "queued" ? "queued" : "running";
  $(".fill", el).style.width = `${Math.min(100, Math.round(p.fraction * 100))}%`;
  const parts = [];
  if (p.images > 1) parts.push(`Image ${p.image}/${p.images}`);
  parts.push(p.steps && p.state === "running" ? `Step ${p.step}/${p.steps}` : p.text || "Waiting…");
  if (p.itPerSec) parts.push(`${p.itPerSec.toFixed(2)} it/s`);
  if (p.steps && p.etaSeconds) parts.push(`ETA ${formatSeconds(p.etaSeconds)}`);
  $(".progress-text", el).textContent = parts.join(" · ");
}

// A finished job: the bar full (whatever the last step reported), its text the outcome.
function finishProgress(text) {
  const el = $("#progress");
  el.hidden = false;
  el.dataset.state = "done";
  $(".fill", el).style.width = "100%";
  $(".progress-text", el).textContent = text;
}

function updateGenerateButtons() {
  for (const b of $$(".generate")) {
    b.textContent = pageJobs.size ? `Generate (${pageJobs.size} in the queue)` : "Generate";
  }
}

function buildRequest(mode, params) {
  const request = { ...params };
  if (mode === "img2img") {
    if (!mask.hasImage) throw new Error("Image→Image needs an init image: drop one on the drop zone.");
    request.init_images = [mask.dataUrl];
    const m = mask.maskDataUrl();
    if (m) request.mask = m;
  }
  return request;
}

// Queues a job through the native API (its id comes back at once) and follows it to the end.
async function generate(mode) {
  const form = forms[mode];
  const params = readParams(form);
  localStorage.setItem(`easel.form.${mode}`, JSON.stringify(params));
  const tab = form.closest(".tab");
  let id;
  try {
    const { id: jobId } = await post("/easel/v1/jobs", { kind: mode, request: buildRequest(mode, params) });
    id = jobId;
  } catch (e) {
    return showError(e.message);
  }
  queue.describe(id, params.prompt);
  const job = { mode, tab, params };
  pageJobs.set(id, job);
  updateGenerateButtons();
  if (shownJob() === id) showProgress({ state: "queued", fraction: 0, text: "Queued…" }, tab);
  const watch = watchJob(id, (p) => {
    if (shownJob() !== id) return;
    if (p.previewOnly) setPreview(tab, p.preview);
    else showProgress(p, tab);
  }, { batchSize: params.batch_size || 1 });
  try {
    await showOutcome(await watch.done, job);
  } catch (e) {
    showError(e.message);
  } finally {
    pageJobs.delete(id);
    updateGenerateButtons();
  }
}

async function showOutcome(done, { mode, tab, params }) {
  setPreview(tab, null);
  if (done.state === "failed") {
    $("#progress").hidden = true;
    return showError(done.error || "The generation failed.");
  }
  if (done.state === "cancelled") return finishProgress("Cancelled");
  const entries = history.entriesOfJob(done);
  // Interrupted before the sampler had an estimate, a job can end without an image.
  if (!entries.length) return finishProgress(done.interrupted ? "Interrupted before the first image was done" : "Done: no image");
  await showResults(tab, entries);
  if (activeTab() === "gallery") renderGallery();
  const seconds = Math.max(0.001, ((done.finished_ms || 0) - (done.started_ms || 0)) / 1000);
  const steps = (params.steps || 0) * (params.batch_size || 1) * (params.n_iter || 1);
  const images = `${entries.length} image${entries.length === 1 ? "" : "s"} in ${formatSeconds(seconds)}`;
  finishProgress(done.interrupted ? `Interrupted: ${images}` : `Done: ${images} (${(steps / seconds).toFixed(2)} it/s overall)`);
}

// Shows a job's images once they have loaded (so the result never flashes in empty).
async function showResults(tab, entries) {
  const images = $(".images", tab), infotext = $(".infotext", tab);
  const imgs = entries.map((e) => {
    const img = new Image();
    img.src = e.image;
    img.alt = e.params.prompt ?? "";
    img.title = "Show its parameters";
    img.onclick = () => { infotext.textContent = e.infotext; };
    return img;
  });
  await Promise.all(imgs.map((img) => img.decode().catch(() => {})));
  images.replaceChildren(...imgs);
  infotext.textContent = entries[0]?.infotext ?? "";
}

// ---- gallery -------------------------------------------------------------------------------------

async function renderGallery() {
  galleryJobs ||= pageSize();
  const { entries, more } = await history.list($("#gallery-search").value, galleryJobs);
  $("#tab-gallery .empty").hidden = entries.length > 0;
  $("[data-action=more-history]").hidden = !more;
  $("#gallery").replaceChildren(...entries.map((e) => {
    const card = document.createElement("figure");
    card.className = "card";
    card.dataset.id = e.id;
    card.innerHTML = `<img alt=""><figcaption><div class="prompt"></div><div class="meta"></div></figcaption>
      <div class="row"><button type="button" data-action="recall">Use parameters</button>
      <button type="button" data-action="delete" class="secondary">Delete</button></div>`;
    $("img", card).src = e.image;
    $("img", card).title = e.infotext;
    $("img", card).onclick = () => showImageInfo(e.image, e.infotext, e.params);
    $(".prompt", card).textContent = e.params.prompt || "(no prompt)";
    $(".meta", card).textContent = `${e.mode} · ${summary(e.params)} · ${new Date(e.time).toLocaleString()}`;
    return card;
  }));
}

function pageSize() { return Math.max(1, Math.min(1000, ui.history_limit || 50)); }

let searchTimer = 0;
function searchGallery() {  // as the user types: one request when they pause, not one per key
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => { galleryJobs = pageSize(); renderGallery().catch((e) => showError(e.message)); }, 250);
}

async function recall(id) {
  const entry = await history.find(id);
  if (!entry) return;
  const mode = entry.mode === "img2img" ? "img2img" : "txt2img";
  writeParams(forms[mode], entry.params);
  showTab(mode);
}

// ---- models and settings -------------------------------------------------------------------------

async function refreshModelState() {
  const [models, options, flags] = await Promise.all([get("/sdapi/v1/sd-models"), get("/sdapi/v1/options"),
    get("/sdapi/v1/cmd-flags")]);
  $("#no-model").hidden = models.length > 0;
  if (flags.ckpt_dir) $("#ckpt-dir").textContent = flags.ckpt_dir;
  $("#current-model").textContent = options.sd_model_checkpoint || (models.length ? "no model loaded" : "");
  return { models, options };
}

async function renderModels() {
  const { models, options } = await refreshModelState();
  $("table.models tbody").replaceChildren(...models.map((m) => {
    const row = document.createElement("tr");
    row.innerHTML = `<td></td><td class="muted"></td><td><button type="button" data-action="select-model" class="secondary">Use</button></td>`;
    row.cells[0].textContent = m.title;
    row.cells[1].textContent = m.hash || "";
    row.dataset.title = m.title;
    const current = m.title === options.sd_model_checkpoint;
    row.classList.toggle("current", current);
    const button = row.querySelector("button");
    button.disabled = current;
    button.textContent = current ? "In use" : "Use";
    return row;
  }));
  $("table.models").hidden = models.length === 0;
}

async function selectModel(title, button) {
  button.disabled = true;
  button.textContent = "Loading…";
  try { await post("/sdapi/v1/options", { sd_model_checkpoint: title }); } catch (e) { showError(e.message); }
  await renderModels();
}

async function loadSettings() {
  const form = $("#settings");
  form.elements.theme.value = ui.theme || "dark";
  form.elements.history_limit.value = pageSize();
  const options = await get("/sdapi/v1/options");
  for (const el of $$("[data-server]", form)) if (options[el.name] !== undefined) el.value = options[el.name];
}

async function saveSettings() {
  const form = $("#settings");
  ui.theme = form.elements.theme.value;
  ui.history_limit = Number(form.elements.history_limit.value);
  localStorage.setItem("easel.ui", JSON.stringify(ui));
  document.documentElement.dataset.theme = ui.theme;
  const options = Object.fromEntries($$("[data-server]", form).map((el) => [el.name, Number(el.value)]));
  try { await post("/sdapi/v1/options", options); } catch (e) { showError(e.message); }
}

// ---- images dropped or chosen --------------------------------------------------------------------

async function setInitImage(file) {
  if (!file || !file.type.startsWith("image/")) return;
  const size = await mask.load(await readAsDataUrl(file));
  const round8 = (v) => Math.max(8, Math.round(v / 8) * 8);
  writeParams(forms.img2img, { width: round8(size.width), height: round8(size.height) });
}

// The image dialog: an image, its parameters, and a button sending them to the form.
function showImageInfo(src, infotext, params) {
  const dialog = $("#pnginfo");
  $("img", dialog).src = src;
  $(".infotext", dialog).textContent = infotext || "This image carries no generation parameters.";
  pngInfoParams = params;
  $("[data-action=pnginfo-send]", dialog).disabled = !params;
  dialog.showModal();
}

async function showPngInfo(file) {
  if (!file || !file.type.startsWith("image/")) return;
  const dataUrl = await readAsDataUrl(file);
  try {
    const res = await post("/sdapi/v1/png-info", { image: dataUrl });
    showImageInfo(dataUrl, res.info, res.info ? paramsFromInfotext(res.parameters) : null);
  } catch (e) { showError(e.message); }
}

// ---- wiring --------------------------------------------------------------------------------------

async function fillSelect(select, items, preferred) {
  select.replaceChildren(...items.map(([value, label]) => new Option(label, value)));
  if (items.some(([value]) => value === preferred)) select.value = preferred;
}

const actions = {
  "random-seed": (b) => { b.closest("form").elements.seed.value = -1; },
  "clear-mask": () => mask.clearMask(),
  "remove-image": () => mask.remove(),
  "refresh-models": async () => { await post("/sdapi/v1/refresh-checkpoints"); await renderModels(); },
  "select-model": (b) => selectModel(b.closest("tr").dataset.title, b),
  "recall": (b) => recall(b.closest(".card").dataset.id),
  "delete": async (b) => { await history.remove(b.closest(".card").dataset.id); renderGallery(); },
  "clear-history": async () => {
    if (confirm("Hide the whole history in this browser? The server keeps the images.")) { await history.clear(); renderGallery(); }
  },
  "more-history": () => { galleryJobs += pageSize(); return renderGallery(); },
  "cancel-job": (b) => queue.cancel(b.closest("li").dataset.id, b),
  "pnginfo-send": () => { writeParams(forms.txt2img, pngInfoParams); $("#pnginfo").close(); showTab("txt2img"); },
};

async function init() {
  document.documentElement.dataset.theme = ui.theme || "dark";
  const template = $("#gen-params");
  for (const [mode, form] of Object.entries(forms)) {
    form.prepend(template.content.cloneNode(true));
    form.append($(".generate", form));
    form.addEventListener("submit", (e) => { e.preventDefault(); generate(mode); });
  }
  mask = new MaskEditor($("#tab-img2img .init-image"));
  queue.init($("#queue"));
  events.connect();

  document.addEventListener("click", (e) => {
    const tab = e.target.closest(".tabs button");
    if (tab) return showTab(tab.dataset.tab);
    const button = e.target.closest("[data-action]");
    if (button && actions[button.dataset.action]) {
      Promise.resolve(actions[button.dataset.action](button)).catch((err) => showError(err.message));
    }
  });
  document.addEventListener("keydown", (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter" && forms[activeTab()]) {
      e.preventDefault();
      generate(activeTab());
    }
  });
  $("#interrupt").onclick = () => post("/sdapi/v1/interrupt").catch((e) => showError(e.message));
  $("#skip").onclick = () => post("/sdapi/v1/skip").catch((e) => showError(e.message));
  $("#gallery-search").addEventListener("input", searchGallery);
  $("#settings").addEventListener("submit", (e) => { e.preventDefault(); saveSettings(); });

  // A file dropped on the img2img drop zone becomes the init image; anywhere else, its PNG info shows.
  const zone = $("#tab-img2img .dropzone");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    e.stopPropagation();
    zone.classList.remove("over");
    setInitImage(e.dataTransfer.files[0]).catch((err) => showError(err.message));
  });
  $("[name=init_file]").addEventListener("change", (e) => setInitImage(e.target.files[0]));
  document.addEventListener("dragover", (e) => e.preventDefault());
  document.addEventListener("drop", (e) => { e.preventDefault(); showPngInfo(e.dataTransfer.files[0]); });

  const [samplers, schedulers] = await Promise.all([get("/sdapi/v1/samplers"), get("/sdapi/v1/schedulers")]);
  for (const [mode, form] of Object.entries(forms)) {
    fillSelect(form.elements.sampler_name, samplers.map((s) => [s.name, s.name]), "Euler a");
    fillSelect(form.elements.scheduler, schedulers.map((s) => [s.name, s.label]), "automatic");
    const saved = localStorage.getItem(`easel.form.${mode}`);
    if (saved) writeParams(form, JSON.parse(saved));
  }
  await Promise.all([refreshModelState(), loadSettings()]);
}

init().catch((e) => showError(`Could not reach the server: ${e.message}`));
