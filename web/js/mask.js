// The img2img init image and the inpaint mask painted over it. The mask canvas has the image's
// size; white strokes mark what to repaint, and it is exported as a black-and-white PNG.
export class MaskEditor {
  constructor(root) {
    this.stack = root.querySelector(".stack");
    this.hint = root.querySelector(".hint");
    this.image = root.querySelector(".image-layer");
    this.mask = root.querySelector(".mask-layer");
    this.brush = root.querySelector("[name=brush]");
    this.dataUrl = null;
    this.painted = false;
    this.mask.addEventListener("pointerdown", (e) => this.#stroke(e, true));
    this.mask.addEventListener("pointermove", (e) => { if (e.buttons & 1) this.#stroke(e, false); });
  }

  get hasImage() { return this.dataUrl !== null; }

  async load(dataUrl) {
    const img = new Image();
    img.src = dataUrl;
    await img.decode();
    for (const c of [this.image, this.mask]) [c.width, c.height] = [img.naturalWidth, img.naturalHeight];
    this.image.getContext("2d").drawImage(img, 0, 0);
    this.dataUrl = dataUrl;
    this.clearMask();
    this.stack.hidden = false;
    this.hint.hidden = true;
    return { width: img.naturalWidth, height: img.naturalHeight };
  }

  remove() {
    this.dataUrl = null;
    this.stack.hidden = true;
    this.hint.hidden = false;
  }

  clearMask() {
    this.mask.getContext("2d").clearRect(0, 0, this.mask.width, this.mask.height);
    this.painted = false;
  }

  // The mask as a PNG data URI, or null when nothing was painted.
  maskDataUrl() {
    if (!this.painted) return null;
    const out = document.createElement("canvas");
    [out.width, out.height] = [this.mask.width, this.mask.height];
    const ctx = out.getContext("2d");
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, out.width, out.height);
    ctx.drawImage(this.mask, 0, 0);
    return out.toDataURL("image/png");
  }

  #stroke(e, start) {
    const rect = this.mask.getBoundingClientRect();
    const scale = this.mask.width / rect.width;  // the brush size is in screen pixels
    const x = (e.clientX - rect.left) * scale, y = (e.clientY - rect.top) * scale;
    const ctx = this.mask.getContext("2d");
    ctx.strokeStyle = ctx.fillStyle = "#fff";
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.lineWidth = Number(this.brush.value) * scale;
    if (start) {
      this.mask.setPointerCapture(e.pointerId);
      ctx.beginPath();
      ctx.arc(x, y, ctx.lineWidth / 2, 0, 2 * Math.PI);
      ctx.fill();
    } else {
      ctx.beginPath();
      ctx.moveTo(this.last.x, this.last.y);
      ctx.lineTo(x, y);
      ctx.stroke();
    }
    this.last = { x, y };
    this.painted = true;
  }
}
