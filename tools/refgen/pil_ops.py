#!/usr/bin/env python3
"""Writes tests/data/pil_ops/: Pillow and OpenCV image operations on 8-bit images, bit for bit.

Run from the source root:  /work/venv-refgen/bin/python tools/refgen/pil_ops.py [--out DIR] [--seed N]
(--seed N: other noise and random bytes in every input image, the same cases; see refgen_args.py)

AUTOMATIC1111's img2img / inpaint preprocessing (modules/images.py resize_image, modules/masking.py,
processing.py) is written with Pillow and cv2; easel's src/imaging reproduces the calls it makes.
Each case runs one real Pillow / cv2 call on small deterministic images with structure (gradients,
noise, hard edges, soft alpha and soft-edged masks) and stores inputs and output as PNG; see
tests/data/pil_ops/README.md. Deterministic: two runs write identical bytes.
"""

import io
import json
import os
import platform
import struct
import sys

import cv2
import numpy as np
import PIL
from PIL import Image, ImageFilter, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import refgen_args  # noqa: E402

OUT = None  # set by main from --out
SEED = None  # --seed: None for the committed set


def input_rng(seed):
    """numpy's generator for one input image: its own seed in the committed set, else one from --seed."""
    return np.random.default_rng(refgen_args.seeded(seed, SEED, f"pil_ops.input{seed}"))

# Pillow mode -> how the PNG stores it. "RGBa" (premultiplied) has no PNG form: its raw bytes are
# stored as an RGBA PNG and the case says "RGBa".
PNG_MODE = {"L": "L", "LA": "LA", "RGB": "RGB", "RGBA": "RGBA", "RGBa": "RGBA"}

FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "hamming": Image.Resampling.HAMMING,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


# --- inputs -------------------------------------------------------------------------------------
def structured_rgb(w, h, seed):
    """Gradients + noise + a hard-edged rectangle and a disc: every filter has something to do."""
    rng = input_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 255 * x / max(w - 1, 1)
    g = 255 * y / max(h - 1, 1)
    b = 127.5 + 100 * np.sin(0.7 * x + 0.4 * y)
    im = np.stack([r, g, b], -1) + rng.normal(0, 18, (h, w, 3))
    im[h // 4 : h // 2, w // 5 : w // 2] = [250, 10, 40]  # hard edges
    disc = (x - 0.7 * w) ** 2 + (y - 0.6 * h) ** 2 < (0.2 * min(w, h)) ** 2
    im[disc] = [5, 240, 200]
    return np.clip(np.rint(im), 0, 255).astype(np.uint8)


def soft_alpha(w, h, seed):
    """0 at the borders, 255 in the middle, a soft ramp between, plus a transparent notch."""
    rng = input_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    d = np.sqrt(((x - w / 2) / (w / 2)) ** 2 + ((y - h / 2) / (h / 2)) ** 2)
    a = np.clip((1.0 - d) * 2.2, 0, 1) * 255 + rng.normal(0, 6, (h, w))
    a[: h // 3, w // 3 : w // 3 + 3] = 0
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def soft_mask(w, h, seed):
    """An inpaint mask: a hard-edged block and a soft-edged ellipse, zero at the borders."""
    rng = input_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    d = np.sqrt(((x - 0.6 * w) / (0.25 * w)) ** 2 + ((y - 0.5 * h) / (0.3 * h)) ** 2)
    m = np.clip((1.3 - d) / 0.6, 0, 1) * 255 + rng.normal(0, 4, (h, w)) * (d < 1.3)
    m[int(0.2 * h) : int(0.45 * h), int(0.15 * w) : int(0.35 * w)] = 255
    return np.clip(np.rint(m), 0, 255).astype(np.uint8)


def binary_mask(w, h):
    """What a user paints in A1111: 0 / 255 with hard edges."""
    y, x = np.mgrid[0:h, 0:w]
    m = ((x - 0.45 * w) ** 2 / (0.2 * w) ** 2 + (y - 0.5 * h) ** 2 / (0.3 * h) ** 2 < 1) | (
        (x > 0.7 * w) & (x < 0.85 * w) & (y > 0.1 * h) & (y < 0.4 * h)
    )
    return (m * 255).astype(np.uint8)


def make_inputs():
    rgb = structured_rgb(23, 17, 1)
    rgba = np.dstack([structured_rgb(23, 17, 2), soft_alpha(23, 17, 3)])
    la = np.dstack([structured_rgb(23, 17, 4)[..., 0], soft_alpha(23, 17, 5)])
    small_rgba = np.dstack([structured_rgb(20, 14, 6), soft_alpha(20, 14, 7)])
    rng = input_rng(8)
    raw_rgba = rng.integers(0, 256, (9, 11, 4), dtype=np.uint8)  # colour > alpha too: clipping
    raw_rgba[0, :, 3] = 0
    raw_rgba[1, :, 3] = 255
    framed = np.zeros((17, 23, 3), np.uint8)
    framed[3:12, 5:19] = structured_rgb(14, 9, 9)
    alpha_framed = np.dstack([structured_rgb(23, 17, 10), np.zeros((17, 23), np.uint8)])
    alpha_framed[4:9, 6:15, 3] = soft_alpha(9, 5, 11) | 1
    return {
        "rgb": Image.fromarray(rgb, "RGB"),
        "l": Image.fromarray(structured_rgb(23, 17, 12)[..., 1], "L"),
        "rgba": Image.fromarray(rgba, "RGBA"),
        "la": Image.fromarray(la, "LA"),
        "rgb_patch": Image.fromarray(structured_rgb(15, 11, 13), "RGB"),
        "mask_patch": Image.fromarray(soft_mask(15, 11, 14), "L"),
        "mask": Image.fromarray(soft_mask(48, 40, 15), "L"),
        "mask_binary": Image.fromarray(binary_mask(64, 48), "L"),
        "small_rgba": Image.fromarray(small_rgba, "RGBA"),
        "raw_rgba": Image.fromarray(raw_rgba, "RGBA"),
        "framed_rgb": Image.fromarray(framed, "RGB"),
        "alpha_framed": Image.fromarray(alpha_framed, "RGBA"),
        "zeros": Image.new("L", (7, 5), 0),
    }


# --- writing ------------------------------------------------------------------------------------
def as_png_image(im):
    if im.mode == "RGBa":
        return Image.frombytes("RGBA", im.size, im.tobytes())
    assert im.mode in PNG_MODE, im.mode
    return im


SAVED = {}  # PNG bytes -> the file that already holds them: identical results share one file


def save(im, name):
    buf = io.BytesIO()
    as_png_image(im).save(buf, "PNG", optimize=False, compress_level=9)
    data = buf.getvalue()
    if data not in SAVED:
        with open(os.path.join(OUT, name), "wb") as fh:
            fh.write(data)
        SAVED[data] = name
    return {"file": SAVED[data], "mode": im.mode, "width": im.width, "height": im.height}


class Cases:
    def __init__(self, inputs):
        self.inputs = inputs
        self.input_files = {}
        self.cases = []

    def input(self, key, mode=None):
        """The input `key` (converted to `mode` when given), written once."""
        im = self.inputs[key] if mode is None else self.inputs[key].convert(mode)
        name = f"in_{key}{'' if mode is None else '_' + mode}.png"
        if name not in self.input_files:
            self.input_files[name] = save(im, name)
        return im, self.input_files[name]

    def add(self, name, op, params, inputs, output=None, expected=None):
        assert all(c["name"] != name for c in self.cases), name
        case = {"name": name, "op": op, "params": params, "inputs": [f for _, f in inputs]}
        if output is not None:
            case["output"] = save(output, f"out_{name}.png")
        if expected is not None or output is None:
            case["expected"] = expected
        self.cases.append(case)


# --- cases --------------------------------------------------------------------------------------
def resize_cases(c):
    sizes = {"down": (10, 7), "up": (41, 30), "mixed": (30, 12), "squash_y": (19, 5)}
    for mode_key, mode in (("l", None), ("rgb", None), ("rgba", None)):
        src, f = c.input(mode_key, mode)
        for fname, flt in FILTERS.items():
            for sname, size in sizes.items():
                c.add(f"resize_{mode_key}_{fname}_{sname}", "resize",
                      {"width": size[0], "height": size[1], "filter": fname}, [(src, f)],
                      src.resize(size, flt))
    la, f = c.input("la")
    for fname in ("nearest", "bilinear", "lanczos"):
        c.add(f"resize_la_{fname}_mixed", "resize", {"width": 30, "height": 12, "filter": fname},
              [(la, f)], la.resize((30, 12), FILTERS[fname]))
    # box=: a fractional region, a whole-pixel region the size of the output (Pillow crops), and
    # A1111's zero-height / zero-width boxes (images.resize_image, resize mode 2 "fill": the edge
    # row or column stretched over the fill band).
    boxes = {
        "frac": ((2.5, 1.25, 20.75, 15.5), (12, 9)),
        "frac_up": ((3.3, 2.7, 9.1, 7.9), (17, 13)),
        "whole": ((3, 2, 13, 9), (10, 7)),
        "zero_h_top": ((0, 0, 23, 0), (23, 6)),
        "zero_h_bottom": ((0, 17, 23, 17), (23, 5)),
        "zero_w_left": ((0, 0, 0, 17), (4, 17)),
        "zero_w_right": ((23, 0, 23, 17), (7, 17)),
    }
    for mode_key in ("rgb", "rgba"):
        src, f = c.input(mode_key)
        for bname, (box, size) in boxes.items():
            # Zero-extent boxes with every filter: BOX at the bottom / right edge has no taps at
            # all (Pillow writes 0).
            filters = FILTERS if bname.startswith("zero") else ("nearest", "bicubic", "lanczos")
            for fname in filters:
                c.add(f"resize_box_{mode_key}_{bname}_{fname}", "resize",
                      {"width": size[0], "height": size[1], "filter": fname, "box": list(box)},
                      [(src, f)], src.resize(size, FILTERS[fname], box=box))
    # Same size, whole box: Pillow returns a copy (RGBA is not premultiplied and back).
    src, f = c.input("rgba")
    c.add("resize_rgba_same_size", "resize", {"width": 23, "height": 17, "filter": "bicubic"},
          [(src, f)], src.resize((23, 17), Image.Resampling.BICUBIC))


def gaussian_blur_cases(c):
    # masking.fill blurs an "RGBa" image smaller than most of its radii.
    src = c.inputs["small_rgba"].convert("RGBa")
    name = "in_small_rgba_RGBa.png"
    c.input_files[name] = save(src, name)
    f = c.input_files[name]
    for radius in (0, 2, 4, 16, 64, 256):
        c.add(f"gaussian_blur_rgba_premultiplied_r{radius}", "gaussian_blur", {"radius": radius},
              [(src, f)], src.filter(ImageFilter.GaussianBlur(radius)))
    for key, radius in (("mask", 4), ("mask", 1.7), ("rgb", 2.5), ("la", 3)):
        im, f = c.input(key)
        c.add(f"gaussian_blur_{key}_r{str(radius).replace('.', 'p')}", "gaussian_blur",
              {"radius": radius}, [(im, f)], im.filter(ImageFilter.GaussianBlur(radius)))


def cv2_blur_cases(c):
    # processing.py (A1111 1.10) for mask_blur b: kernel 2 * int(2.5 * b + 0.5) + 1 along x with
    # sigma b, then the same along y.
    for key in ("mask_binary", "mask"):
        im, f = c.input(key)
        arr = np.array(im)
        for b in (1, 4, 11, 64):
            k = 2 * int(2.5 * b + 0.5) + 1
            bx = cv2.GaussianBlur(arr, (k, 1), b)
            c.add(f"cv2_blur_{key}_x_b{b}", "cv2_gaussian_blur", {"kx": k, "ky": 1, "sigma_x": b},
                  [(im, f)], Image.fromarray(bx, "L"))
            by = cv2.GaussianBlur(arr, (1, k), b)
            c.add(f"cv2_blur_{key}_y_b{b}", "cv2_gaussian_blur", {"kx": 1, "ky": k, "sigma_x": b},
                  [(im, f)], Image.fromarray(by, "L"))
    im, f = c.input("mask_binary")
    arr = np.array(im)
    others = {
        "auto_size_sigma1p5": ((0, 0), 1.5, 0),
        "5x5_sigma0": ((5, 5), 0, 0),
        "15x7_sigma2_3": ((15, 7), 2.0, 3.0),
        "11x11_sigma0": ((11, 11), 0, 0),
    }
    for name, (ksize, sx, sy) in others.items():
        out = cv2.GaussianBlur(arr, ksize, sx, sigmaY=sy)
        c.add(f"cv2_blur_{name}", "cv2_gaussian_blur",
              {"kx": ksize[0], "ky": ksize[1], "sigma_x": sx, "sigma_y": sy}, [(im, f)],
              Image.fromarray(out, "L"))
    # The double kernels themselves (cv2.getGaussianKernel), as IEEE bit patterns.
    for n, sigma in ((7, 1), (21, 4), (57, 11), (321, 64), (5, 0), (13, 0), (15, 2.0), (3, 0.3)):
        k = cv2.getGaussianKernel(n, sigma, ktype=cv2.CV_64F).ravel()
        c.add(f"cv2_kernel_n{n}_s{str(sigma).replace('.', 'p')}", "cv2_gaussian_kernel",
              {"n": n, "sigma": sigma}, [],
              expected=[struct.pack(">d", float(v)).hex() for v in k])


def convert_cases(c):
    conversions = [
        ("rgba", "RGBa"), ("rgba", "RGB"), ("rgba", "L"), ("rgb", "L"), ("rgb", "RGBA"),
        ("l", "RGB"), ("l", "RGBA"), ("la", "L"),
    ]
    for key, mode in conversions:
        im, f = c.input(key)
        c.add(f"convert_{key}_to_{mode}", "convert", {"mode": mode}, [(im, f)], im.convert(mode))
    # RGBa -> RGBA / RGB on raw premultiplied bytes, colour > alpha included (clipped).
    raw = c.inputs["raw_rgba"]
    prem = Image.frombytes("RGBa", raw.size, raw.tobytes())
    name = "in_raw_RGBa.png"
    c.input_files[name] = save(prem, name)
    for mode in ("RGBA", "RGB"):
        c.add(f"convert_raw_RGBa_to_{mode}", "convert", {"mode": mode},
              [(prem, c.input_files[name])], prem.convert(mode))
    src = c.inputs["rgba"].convert("RGBa")
    c.add("convert_rgba_RGBa_to_RGBA", "convert", {"mode": "RGBA"},
          [(src, c.input("rgba", "RGBa")[1])], src.convert("RGBA"))


def paste_cases(c):
    for key in ("rgb", "l"):
        dst, fd = c.input(key)
        mode = dst.mode
        patch, fp = c.input("rgb_patch", None if mode == "RGB" else mode)
        mask, fm = c.input("mask_patch")
        for name, xy, with_mask in (("inside", (5, 4), False), ("inside_masked", (5, 4), True),
                                    ("top_left_out_masked", (-4, -3), True),
                                    ("bottom_right_out", (14, 10), False),
                                    ("bottom_right_out_masked", (14, 10), True),
                                    ("fully_outside", (40, 2), False)):
            out = dst.copy()
            out.paste(patch, xy, mask if with_mask else None)
            ins = [(dst, fd), (patch, fp)] + ([(mask, fm)] if with_mask else [])
            c.add(f"paste_{key}_{name}", "paste", {"x": xy[0], "y": xy[1]}, ins, out)
    # masking.fill: an RGBa canvas, the image (RGBA -> RGBa) pasted through the inverted mask.
    rgba = c.inputs["rgba"]
    src, fs = c.input("rgba", "RGBa")
    mask_img = Image.fromarray(soft_mask(23, 17, 16), "L")
    name = "in_mask_23x17.png"
    c.input_files[name] = save(mask_img, name)
    inv = ImageOps.invert(mask_img)
    name_inv = "in_mask_23x17_inverted.png"
    c.input_files[name_inv] = save(inv, name_inv)
    canvas = Image.new("RGBa", rgba.size)
    name_canvas = "in_canvas_RGBa.png"
    c.input_files[name_canvas] = save(canvas, name_canvas)
    out = canvas.copy()
    out.paste(rgba.convert("RGBA").convert("RGBa"), mask=inv)
    c.add("paste_fill_RGBa_inverted_mask", "paste", {"x": 0, "y": 0},
          [(canvas, c.input_files[name_canvas]), (src, fs), (inv, c.input_files[name_inv])], out)


def alpha_composite_cases(c):
    dst, fd = c.input("rgba")
    src_rgba = Image.fromarray(
        np.dstack([structured_rgb(23, 17, 20), soft_alpha(23, 17, 21)[::-1, ::-1]]), "RGBA")
    name = "in_rgba_over.png"
    c.input_files[name] = save(src_rgba, name)
    out = dst.copy()
    out.alpha_composite(src_rgba)
    c.add("alpha_composite_soft", "alpha_composite", {}, [(dst, fd), (src_rgba, c.input_files[name])], out)
    # Over a transparent canvas, then again (masking.fill's repeated composite).
    canvas = Image.new("RGBA", dst.size)
    name_canvas = "in_canvas_RGBA.png"
    c.input_files[name_canvas] = save(canvas, name_canvas)
    out = canvas.copy()
    out.alpha_composite(dst)
    c.add("alpha_composite_onto_transparent", "alpha_composite", {},
          [(canvas, c.input_files[name_canvas]), (dst, fd)], out)
    out2 = dst.copy()
    out2.alpha_composite(dst)
    c.add("alpha_composite_self", "alpha_composite", {}, [(dst, fd), (dst, fd)], out2)
    la, fl = c.input("la")
    la2 = Image.fromarray(np.array(la)[::-1, ::-1].copy(), "LA")
    name_la = "in_la_flipped.png"
    c.input_files[name_la] = save(la2, name_la)
    out3 = la.copy()
    out3.alpha_composite(la2)
    c.add("alpha_composite_la", "alpha_composite", {}, [(la, fl), (la2, c.input_files[name_la])], out3)


def crop_bbox_point_cases(c):
    for key in ("rgba", "l"):
        im, f = c.input(key)
        for name, box in (("beyond_top_left", (-5, -3, 20, 15)),
                          ("beyond_bottom_right", (12, 9, 30, 24)), ("inside", (2, 3, 19, 11)),
                          ("all_outside", (30, 20, 36, 24))):
            c.add(f"crop_{key}_{name}", "crop", {"box": list(box)}, [(im, f)], im.crop(box))
    for key in ("mask", "framed_rgb", "alpha_framed", "zeros", "rgba"):
        im, f = c.input(key)
        bbox = im.getbbox()
        c.add(f"getbbox_{key}", "getbbox", {}, [(im, f)], expected=None if bbox is None else list(bbox))
    for key in ("mask", "rgb"):
        im, f = c.input(key)
        c.add(f"invert_{key}", "invert", {}, [(im, f)], ImageOps.invert(im))
    im, f = c.input("mask")
    for t in (128, 0, 254):
        c.add(f"point_threshold_{t}", "point_threshold", {"threshold": t}, [(im, f)],
              im.point(lambda x, t=t: 255 if x > t else 0))


def main():
    global OUT, SEED
    args = refgen_args.parse("pil_ops", __doc__)
    OUT, SEED = args.out, args.seed
    # Everything here is generated but the hand-written README.md.
    os.makedirs(OUT, exist_ok=True)
    for name in os.listdir(OUT):
        if name != "README.md":
            os.remove(os.path.join(OUT, name))
    c = Cases(make_inputs())
    resize_cases(c)
    gaussian_blur_cases(c)
    cv2_blur_cases(c)
    convert_cases(c)
    paste_cases(c)
    alpha_composite_cases(c)
    crop_bbox_point_cases(c)
    versions = {
        "pillow": PIL.__version__,
        "opencv-python-headless": cv2.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    if SEED is not None:
        versions["seed"] = str(SEED)
    with open(os.path.join(OUT, "cases.json"), "w") as fh:
        json.dump({"versions": versions, "inputs": sorted(c.input_files), "cases": c.cases}, fh,
                  indent=1, sort_keys=True)
        fh.write("\n")
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print(f"{len(c.cases)} cases, {len(os.listdir(OUT))} files, {total / 1e6:.2f} MB in {OUT}")


if __name__ == "__main__":
    main()
