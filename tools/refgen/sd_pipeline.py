#!/usr/bin/env python3
"""Golden set tests/data/sd_pipeline_tiny: whole Stable Diffusion 1.x / 2.x pipelines run the way
AUTOMATIC1111's webui (1.10) runs them on the CPU, on tiny random models with the real
architectures, with the SD1 checkpoint in the three layouts users have (original single-file
.safetensors, the same dict as a torch-pickle .ckpt, a diffusers folder).

Run from the source root:  /work/venv-refgen/bin/python tools/refgen/sd_pipeline.py [--out DIR] [--seed N]
(--seed N: other weights, input images and their sizes, case seeds, plain prompts and request sizes,
the same kinds of cases; see refgen_args.py and vary_cases below)

The A1111 rules reproduced are written out below in our own words (A1111 is not a package); each
function names the A1111 file/function it follows. The set's README.md lists the files, keys, the
rules reproduced and what is not reproduced. k-diffusion's own sampler functions and denoiser
wrappers are used unchanged (k_diffusion 0.1.1.post1, loaded by file path: its package __init__
pulls a training stack that is not installed).
"""

import copy
import json
import math
import os
import platform
import re
import sys
import types

import cv2
import numpy as np
import PIL
import safetensors
import torch
from PIL import Image, ImageFilter, ImageOps
from safetensors.torch import save_file

import diffusers
import open_clip
import transformers
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from diffusers.loaders.single_file_utils import (LDM_UNET_KEY, convert_ldm_clip_checkpoint,
                                                 convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint,
                                                 convert_open_clip_checkpoint)
from transformers import CLIPTextConfig, CLIPTextModel

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = None  # set by main from --out
SEED = None  # --seed: None for the committed set
BPE = os.path.join(ROOT, "tests", "data", "clip_tokenizer", "bpe_simple_vocab_16e6.txt.gz")

torch.set_num_threads(1)  # deterministic reductions
torch.use_deterministic_algorithms(True)

# --- k-diffusion, by file path ------------------------------------------------------------------


def load_k_diffusion():
    import importlib.util
    spec = importlib.util.find_spec("k_diffusion")
    kdir = os.path.dirname(spec.origin)
    sys.modules.setdefault("torchdiffeq", types.SimpleNamespace(odeint=None))  # only sample_dpm_ode uses it
    pkg = types.ModuleType("k_diffusion")
    pkg.__path__ = [kdir]
    sys.modules["k_diffusion"] = pkg
    import k_diffusion.sampling as ks  # noqa: E402
    import k_diffusion.external as ke  # noqa: E402
    return ks, ke


KS, KE = load_k_diffusion()

# --- versions -------------------------------------------------------------------------------------

VERSIONS = {
    "python": platform.python_version(), "torch": torch.__version__, "diffusers": diffusers.__version__,
    "transformers": transformers.__version__, "open_clip_torch": open_clip.__version__,
    "k_diffusion": "0.1.1.post1", "safetensors": safetensors.__version__, "numpy": np.__version__,
    "pillow": PIL.__version__, "a1111_rules": "AUTOMATIC1111/stable-diffusion-webui 1.10 (modules/*.py)",
    "generator": "tools/refgen/sd_pipeline.py",
}
META = {"versions": json.dumps(VERSIONS, sort_keys=True)}

SCALE_FACTOR = 0.18215
BOS, EOS = 49406, 49407
COMMA = 267  # ',</w>'

# --- the DDPM schedule as ldm computes it (ldm.modules.diffusionmodules.util.make_beta_schedule) -----


def ldm_alphas_cumprod(linear_start=0.00085, linear_end=0.012, n=1000):
    betas = (torch.linspace(linear_start ** 0.5, linear_end ** 0.5, n, dtype=torch.float64) ** 2).numpy()
    alphas = 1.0 - betas
    return torch.tensor(np.cumprod(alphas, axis=0), dtype=torch.float32)  # registered as a float32 buffer


# --- tiny models ---------------------------------------------------------------------------------

# Sizes chosen to keep the set small (the 49408-row token embedding is stored once per model file);
# the head counts and GroupNorm group counts are not visible in the tensor shapes: info.json records
# them per model file (unet.norm_groups, unet.attention, vae.norm_groups, text_encoder.heads).
TEXT_WIDTH = 4  # 2 heads of 2
TEXT_HEADS = 2
SD1_TEXT = dict(vocab_size=49408, hidden_size=TEXT_WIDTH, intermediate_size=8, num_hidden_layers=2,
                num_attention_heads=TEXT_HEADS, max_position_embeddings=77, hidden_act="quick_gelu",
                layer_norm_eps=1e-5, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=1, projection_dim=TEXT_WIDTH)
SD2_TEXT = dict(context_length=77, vocab_size=49408, width=TEXT_WIDTH, heads=TEXT_HEADS, layers=3, mlp_ratio=2.0)
# UNets (8, 16): the UNet is stored five times (three SD1 layouts, inpainting, SD2), (16, 32) would put
# the set over its size budget. GroupNorm 8 groups (1 and 2 channels per group; the VAE has 4).
# SD1: the same head count (2) at every level (as SD1's 8), head dims 4 (level 0) and 8 (mid block).
UNET_SD1 = dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=TEXT_WIDTH,
                attention_head_dim=2, norm_num_groups=8, use_linear_projection=False, upcast_attention=False)
UNET_SD1_INPAINT = dict(UNET_SD1, in_channels=9)
# SD2: the head count differs per level (2 at level 0, 4 in the mid block at level 1) with a constant
# head dim 4 (as SD2's 64). (diffusers' attention_head_dim holds the head counts, as in SD2's configs.)
UNET_SD2 = dict(UNET_SD1, attention_head_dim=[2, 4], use_linear_projection=True, upcast_attention=True)
# 4 levels: images are 8x the latents, as in SD.
VAE = dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
           up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[8, 16, 16, 16], layers_per_block=1,
           act_fn="silu", latent_channels=4, norm_num_groups=4, sample_size=64, scaling_factor=SCALE_FACTOR)


def randomize(module, gen, weight_scale=1.0):
    """Realistic-scale random values in every parameter (norm scales around 1), then rounded to f16:
    the f16 files hold exactly the values the f32 reference computes with."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            leaf = name.split(".")
            if "logit_scale" in name:
                continue
            is_norm = any(s in n for n in leaf[-2:] for s in ("norm", "ln_", "layer_norm"))
            if name.endswith("bias"):
                v = 0.1 * torch.randn(p.shape, generator=gen)
            elif is_norm and p.dim() == 1:
                v = 1.0 + 0.1 * torch.randn(p.shape, generator=gen)
            elif "token_embedding" in name or "position_embedding" in name or "positional_embedding" in name:
                v = 0.5 * torch.randn(p.shape, generator=gen)
            else:
                fan_in = p[0].numel() if p.dim() > 1 else p.numel()
                v = weight_scale * torch.randn(p.shape, generator=gen) / fan_in ** 0.5
            p.copy_(v)
        for p in module.parameters():
            p.copy_(p.half().float())


def make_vae(gen):
    vae = AutoencoderKL(**VAE).eval()
    randomize(vae, gen)
    # Keep the decoded images mostly inside [-1, 1] (no saturation hiding errors): scale conv_out.
    with torch.no_grad():
        z = torch.randn(2, 4, 4, 6, generator=gen)
        out = vae.decode(z / SCALE_FACTOR).sample
        s = 0.5 / float(out.std())
        vae.decoder.conv_out.weight.mul_(s)
        vae.decoder.conv_out.bias.mul_(s)
        for p in vae.parameters():
            p.copy_(p.half().float())
    return vae


def make_unet(cfg, gen):
    unet = UNet2DConditionModel(**cfg).eval()
    randomize(unet, gen)
    return unet


def make_sd1_text(gen):
    te = CLIPTextModel(CLIPTextConfig(**SD1_TEXT)).eval()
    randomize(te, gen)
    return te


def make_sd2_text(gen):
    """open_clip's own CLIP (text tower real, vision tower a throwaway), as ldm's FrozenOpenCLIPEmbedder
    builds it and then deletes model.visual."""
    vision = dict(image_size=16, patch_size=8, width=16, layers=1, head_width=8)
    clip = open_clip.CLIP(embed_dim=TEXT_WIDTH, vision_cfg=vision, text_cfg=SD2_TEXT, quick_gelu=False).eval()
    randomize(clip, gen)
    del clip.visual
    return clip


# --- diffusers naming -> original ldm naming (inverse of diffusers' converters) --------------------

# The maps live with the UNet and VAE generators; this one reuses them.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from unet_sd import to_original as unet_name_to_ldm  # noqa: E402
from vae_kl import diffusers_to_ldm as vae_names_to_ldm  # noqa: E402
import refgen_args  # noqa: E402


def unet_to_ldm(unet):
    sd = unet.state_dict()
    cfg = unet.config
    up_attn = ["CrossAttn" in t for t in cfg.up_block_types]
    out = {LDM_UNET_KEY + unet_name_to_ldm(k, cfg.layers_per_block, up_attn): v for k, v in sd.items()}
    assert len(out) == len(sd)
    back = convert_ldm_unet_checkpoint(out, dict(cfg))
    assert set(back) == set(sd), set(back) ^ set(sd)
    for k, v in sd.items():
        assert back[k].shape == v.shape and torch.equal(back[k], v), k
    return out


def vae_to_ldm(vae):
    sd = vae.state_dict()
    names = vae_names_to_ldm(sd, len(vae.config.block_out_channels))
    out = {"first_stage_model." + k: v for k, v in names.items()}
    back = convert_ldm_vae_checkpoint(out, dict(vae.config))
    assert set(back) == set(sd), set(back) ^ set(sd)
    for k, v in sd.items():
        assert back[k].shape == v.shape and torch.equal(back[k], v), k
    return out


def sd1_text_to_ldm(te):
    sd = te.state_dict()
    out = {"cond_stage_model.transformer." + k: v for k, v in sd.items()}
    # transformers < 4.31 saved this buffer: real SD1 files carry it (int64).
    out["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(77, dtype=torch.int64)[None]
    back = convert_ldm_clip_checkpoint(out)
    back.pop("text_model.embeddings.position_ids")
    assert set(back) == set(sd) and all(torch.equal(back[k], sd[k]) for k in sd)
    return out


def sd2_text_to_ldm(clip):
    out = {"cond_stage_model.model." + k: v for k, v in clip.state_dict().items()}
    # diffusers' converter takes it to transformers naming without complaint (SD2 text_encoder).
    conv = convert_open_clip_checkpoint(None, out)
    assert "text_model.final_layer_norm.weight" in conv and len(conv) > 10
    return out


def single_file(parts, alphas_cumprod):
    sd = {}
    for part in parts:
        for k, v in part.items():
            assert k not in sd
            sd[k] = (v if v.dtype == torch.int64 else v.detach().half()).contiguous().clone()
    sd["alphas_cumprod"] = alphas_cumprod.clone()
    return sd


# --- A1111 prompt attention (modules/prompt_parser.py parse_prompt_attention), the syntax used here --

RE_WEIGHTED = re.compile(r"\(([^():\\\[\]]+):([0-9]*\.?[0-9]+)\)")
RE_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)


def parse_prompt(text):
    """Only '(text:number)' and 'BREAK' (no nesting, no escapes, no bare brackets): A1111's result on
    such prompts is the fragments in order, BREAK as ['BREAK', -1], runs of equal weight merged."""
    assert not re.search(r"[\[\]\\]", RE_WEIGHTED.sub("", text)) and "(" not in RE_WEIGHTED.sub("", text)
    res = []
    pos = 0
    for m in list(RE_WEIGHTED.finditer(text)) + [None]:
        plain = text[pos:m.start()] if m else text[pos:]
        for i, part in enumerate(RE_BREAK.split(plain) if plain else []):  # empty split parts are kept
            if i > 0:
                res.append(["BREAK", -1])
            res.append([part, 1.0])
        if m:
            assert not RE_BREAK.search(m.group(1)), "BREAK inside a weighted group: not this parser's syntax"
            res.append([m.group(1), float(m.group(2))])
            pos = m.end()
    res = res or [["", 1.0]]
    i = 0
    while i + 1 < len(res):
        if res[i][1] == res[i + 1][1]:
            res[i][0] += res[i + 1][0]
            res.pop(i + 1)
        else:
            i += 1
    return res


# --- A1111 conditioning (modules/sd_hijack_clip.py, sd_hijack_open_clip.py, sd_emphasis.py) ---------


class Tokenizer:
    def __init__(self):
        self.t = open_clip.tokenizer.SimpleTokenizer(bpe_path=BPE)
        assert self.t.encoder["<start_of_text>"] == BOS and self.t.encoder["<end_of_text>"] == EOS
        assert self.t.encoder[",</w>"] == COMMA

    def __call__(self, text):
        return self.t.encode(text)


TOKENIZER = None


def tokenize_line(line, backtrack=20, chunk_length=75):
    """TextConditionalModel.tokenize_line: 75-token chunks, each [BOS] + 75 + [EOS], padded with EOS;
    BREAK starts a new chunk; a chunk that fills up moves the words after its last comma (if that comma
    is at most `backtrack` tokens back) into the next chunk (opts.comma_padding_backtrack, default 20)."""
    parsed = parse_prompt(line)
    tokenized = [TOKENIZER(text) for text, _ in parsed]
    chunks = []
    cur_t, cur_m = [], []
    last_comma = -1

    def next_chunk():
        nonlocal cur_t, cur_m, last_comma
        add = chunk_length - len(cur_t)
        cur_t = [BOS] + cur_t + [EOS] * add + [EOS]
        cur_m = [1.0] + cur_m + [1.0] * add + [1.0]
        chunks.append((cur_t, cur_m))
        cur_t, cur_m, last_comma = [], [], -1

    for tokens, (text, weight) in zip(tokenized, parsed):
        if text == "BREAK" and weight == -1:
            next_chunk()
            continue
        for token in tokens:
            if token == COMMA:
                last_comma = len(cur_t)
            elif (backtrack != 0 and len(cur_t) == chunk_length and last_comma != -1
                  and len(cur_t) - last_comma <= backtrack):
                cut = last_comma + 1
                rt, rm = cur_t[cut:], cur_m[cut:]
                cur_t, cur_m = cur_t[:cut], cur_m[:cut]
                next_chunk()
                cur_t, cur_m = rt, rm
            if len(cur_t) == chunk_length:
                next_chunk()
            cur_t.append(token)
            cur_m.append(weight)
    if cur_t or not chunks:
        next_chunk()
    return chunks


def encode_prompt(model, prompt, clip_skip):
    """FrozenCLIPEmbedderWithCustomWordsBase.forward for one prompt (A1111 encodes each distinct prompt
    of a batch on its own: prompt_parser.get_learned_conditioning), returns [1, 77 * chunks, width]
    and the chunks (tokens as given to the encoder, multipliers)."""
    chunks = tokenize_line(prompt)
    zs, info = [], []
    for tokens, mults in chunks:
        tokens = list(tokens)
        if model["kind"] == "sd2":  # id_pad 0 != id_end: everything after the first EOS becomes 0
            first = tokens.index(EOS)
            tokens = tokens[:first + 1] + [0] * (len(tokens) - first - 1)
        ids = torch.tensor([tokens], dtype=torch.int64)
        z = text_encode(model, ids, clip_skip)
        # sd_emphasis.EmphasisOriginal.after_transformers
        m = torch.asarray([mults])
        original_mean = z.mean()
        z = z * m.reshape(m.shape + (1,)).expand(z.shape)
        new_mean = z.mean()
        z = z * (original_mean / new_mean)
        zs.append(z)
        info.append({"tokens": tokens, "multipliers": mults})
    return torch.hstack(zs), info


def text_encode(model, ids, clip_skip):
    with torch.no_grad():
        if model["kind"] == "sd2":
            # ldm FrozenOpenCLIPEmbedder(layer="penultimate").encode_with_transformer, whatever CLIP skip is
            clip = model["text"]
            x = clip.token_embedding(ids) + clip.positional_embedding
            for r in clip.transformer.resblocks[:-1]:
                x = r(x, attn_mask=clip.attn_mask)
            return clip.ln_final(x)
        te = model["text"]
        out = te(input_ids=ids, output_hidden_states=True)
        if clip_skip > 1:  # FrozenCLIPEmbedderWithCustomWords.encode_with_transformers
            return te.text_model.final_layer_norm(out.hidden_states[-clip_skip])
        return out.last_hidden_state


# --- A1111 noise (modules/rng.py ImageRNG, randn_source "CPU") -----------------------------------


def slerp(val, low, high):
    """rng.slerp, as written (norms over dim 1 of a [C, H, W] noise: the height axis)."""
    low_norm = low / torch.norm(low, dim=1, keepdim=True)
    high_norm = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if dot.mean() > 0.9995:
        return low * val + high * (1 - val)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    return (torch.sin((1.0 - val) * omega) / so).unsqueeze(1) * low + (torch.sin(val * omega) / so).unsqueeze(1) * high


class ImageRNG:
    def __init__(self, shape, seeds, subseeds, subseed_strength):
        self.shape, self.seeds, self.subseeds, self.strength = tuple(shape), seeds, subseeds, subseed_strength
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.is_first = True

    def next(self):
        xs = []
        if self.is_first:
            self.is_first = False
            for i, g in enumerate(self.generators):
                noise = torch.randn(self.shape, generator=g)
                if self.subseeds is not None and self.strength != 0:
                    sub = torch.randn(self.shape, generator=torch.Generator().manual_seed(int(self.subseeds[i])))
                    noise = slerp(self.strength, noise, sub)
                xs.append(noise)
        else:
            for g in self.generators:
                xs.append(torch.randn(self.shape, generator=g))
        return torch.stack(xs)


class TorchHijack:
    """sd_samplers_common.TorchHijack: k-diffusion's torch.randn_like draws from p.rng."""

    def __init__(self, rng):
        self.rng = rng

    def __getattr__(self, item):
        if item == "randn_like":
            return lambda x: self.rng.next().to(x.dtype)
        return getattr(torch, item)


# --- the model as k-diffusion sees it (ldm LatentDiffusion.apply_model) -------------------------------


class LdmModel(torch.nn.Module):
    def __init__(self, unet, alphas_cumprod, hybrid):
        super().__init__()
        self.unet, self.hybrid = unet, hybrid
        self.alphas_cumprod = alphas_cumprod

    def apply_model(self, x, t, cond):
        if self.hybrid:  # DiffusionWrapper, conditioning_key "hybrid": concat [x, c_concat] on channels
            x = torch.cat([x] + cond["c_concat"], dim=1)
        c = torch.cat(cond["c_crossattn"], 1)
        return self.unet(x, t, encoder_hidden_states=c).sample


class CFGDenoiser(torch.nn.Module):
    """sd_samplers_cfg_denoiser.CFGDenoiser.forward with default options (batch_cond_uncond on,
    pad_cond_uncond off, s_min_uncond 0, skip_early_cond 0), prompts without AND, no scripts."""

    def __init__(self, inner, trace):
        super().__init__()
        self.inner, self.trace = inner, trace
        self.mask = self.nmask = self.init_latent = None

    def forward(self, x, sigma, uncond, cond, cond_scale, image_cond):
        b = x.shape[0]
        x_in = torch.cat([x, x])
        sigma_in = torch.cat([sigma, sigma])
        image_cond_in = torch.cat([image_cond, image_cond])
        if cond.shape[1] == uncond.shape[1]:
            x_out = self.inner(x_in, sigma_in, cond={"c_crossattn": [torch.cat([cond, uncond])],
                                                    "c_concat": [image_cond_in]})
            self.trace["calls"].append("batched")
        else:  # token lengths differ: cond batch, then uncond batch
            x_out = torch.zeros_like(x_in)
            x_out[:b] = self.inner(x_in[:b], sigma_in[:b], cond={"c_crossattn": [cond], "c_concat": [image_cond_in[:b]]})
            x_out[-b:] = self.inner(x_in[-b:], sigma_in[-b:], cond={"c_crossattn": [uncond], "c_concat": [image_cond_in[-b:]]})
            self.trace["calls"].append("separate")
        # combine_denoised: denoised = uncond + (cond - uncond) * (weight * cond_scale), weight 1
        denoised_uncond = x_out[-b:]
        denoised = torch.clone(denoised_uncond)
        for i in range(b):
            denoised[i] += (x_out[i] - denoised_uncond[i]) * (1.0 * cond_scale)
        if self.mask is not None:  # apply_blend after denoising: nmask = the inpainted area
            denoised = denoised * self.nmask + self.init_latent * self.mask
        self.trace["denoised"].append(denoised.clone())
        return denoised


SAMPLERS = {"Euler": "sample_euler", "Euler a": "sample_euler_ancestral", "DPM++ 2M": "sample_dpmpp_2m"}
# The sampler's own 'scheduler' option in A1111's samplers_k_diffusion table, which "Automatic"
# resolves to (KDiffusionSampler.get_sigmas: scheduler_name = self.config.options.get('scheduler')).
SAMPLER_AUTOMATIC_SCHEDULE = {"Euler": None, "Euler a": None, "DPM++ 2M": "Karras"}


def get_sigmas(model_wrap, scheduler, steps, sampler_name):
    """KDiffusionSampler.get_sigmas (sd_samplers_kdiffusion.py, sd_schedulers.py)."""
    if scheduler == "Automatic":
        scheduler = SAMPLER_AUTOMATIC_SCHEDULE[sampler_name]
    if scheduler is None:
        return model_wrap.get_sigmas(steps)
    if scheduler == "Karras":
        smin, smax = model_wrap.sigmas[0].item(), model_wrap.sigmas[-1].item()
        return KS.get_sigmas_karras(n=steps, sigma_min=smin, sigma_max=smax, device="cpu")
    raise ValueError(scheduler)


# --- A1111 img2img / inpaint pictures (processing.py StableDiffusionProcessingImg2Img.init, apply_overlay,
#     uncrop; masking.py; images.py resize_image) ---------------------------------------------------


def resize_image(mode, im, width, height):
    """images.resize_image with opts.upscaler_for_img2img None: every resize is Pillow LANCZOS.
    0 just resize; 1 crop and resize (scale to cover, centre, cut); 2 and anything else resize and fill
    (scale to fit, centre, stretch the outermost row/column over the empty bands). Modes 1 and 2 paste
    into a new RGB image (an L image comes back RGB with equal channels)."""
    def resize(im, w, h):
        return im.resize((w, h), resample=Image.LANCZOS)

    if mode == 0:
        return resize(im, width, height)
    ratio = width / height
    src_ratio = im.width / im.height
    if mode == 1:
        src_w = width if ratio > src_ratio else im.width * height // im.height
        src_h = height if ratio <= src_ratio else im.height * width // im.width
        resized = resize(im, src_w, src_h)
        res = Image.new("RGB", (width, height))
        res.paste(resized, box=(width // 2 - src_w // 2, height // 2 - src_h // 2))
        return res
    src_w = width if ratio < src_ratio else im.width * height // im.height
    src_h = height if ratio >= src_ratio else im.height * width // im.width
    resized = resize(im, src_w, src_h)
    res = Image.new("RGB", (width, height))
    res.paste(resized, box=(width // 2 - src_w // 2, height // 2 - src_h // 2))
    if ratio < src_ratio:
        fill_height = height // 2 - src_h // 2
        if fill_height > 0:
            res.paste(resized.resize((width, fill_height), box=(0, 0, width, 0)), box=(0, 0))
            res.paste(resized.resize((width, fill_height), box=(0, resized.height, width, resized.height)),
                      box=(0, fill_height + src_h))
    elif ratio > src_ratio:
        fill_width = width // 2 - src_w // 2
        if fill_width > 0:
            res.paste(resized.resize((fill_width, height), box=(0, 0, 0, height)), box=(0, 0))
            res.paste(resized.resize((fill_width, height), box=(resized.width, 0, resized.width, height)),
                      box=(fill_width + src_w, 0))
    return res


def create_binary_mask(image):
    """processing.create_binary_mask (mask_round on): the alpha of an RGBA mask with transparency,
    thresholded at 128; any other mask is just convert('L') (no threshold)."""
    if image.mode == "RGBA" and image.getextrema()[-1] != (255, 255):
        return image.split()[-1].convert("L").point(lambda x: 255 if x > 128 else 0)
    return image.convert("L")


def get_crop_region_v2(mask, pad):
    """masking.get_crop_region_v2: the mask's bbox grown by pad (clipped), None for an all-black mask."""
    box = mask.getbbox()
    if not box:
        return None
    x1, y1, x2, y2 = box
    return (max(x1 - pad, 0), max(y1 - pad, 0), min(x2 + pad, mask.size[0]), min(y2 + pad, mask.size[1])) if pad else box


def expand_crop_region(crop_region, processing_width, processing_height, image_width, image_height):
    """masking.expand_crop_region: grow the short side to the generation's aspect ratio, shifted back
    inside the image (the result may still poke out by the part it cannot fit)."""
    x1, y1, x2, y2 = crop_region
    ratio_crop_region = (x2 - x1) / (y2 - y1)
    ratio_processing = processing_width / processing_height
    if ratio_crop_region > ratio_processing:
        desired_height = (x2 - x1) / ratio_processing
        desired_height_diff = int(desired_height - (y2 - y1))
        y1 -= desired_height_diff // 2
        y2 += desired_height_diff - desired_height_diff // 2
        if y2 >= image_height:
            diff = y2 - image_height
            y2 -= diff
            y1 -= diff
        if y1 < 0:
            y2 -= y1
            y1 -= y1
        if y2 >= image_height:
            y2 = image_height
    else:
        desired_width = (y2 - y1) * ratio_processing
        desired_width_diff = int(desired_width - (x2 - x1))
        x1 -= desired_width_diff // 2
        x2 += desired_width_diff - desired_width_diff // 2
        if x2 >= image_width:
            diff = x2 - image_width
            x2 -= diff
            x1 -= diff
        if x1 < 0:
            x2 -= x1
            x1 -= x1
        if x2 >= image_width:
            x2 = image_width
    return x1, y1, x2, y2


def masking_fill(image, mask):
    """masking.fill ("Masked content: fill"): the unmasked pixels (premultiplied) blurred at radii 256 ..
    0 and alpha-composited coarse to fine."""
    image_mod = Image.new("RGBA", (image.width, image.height))
    image_masked = Image.new("RGBa", (image.width, image.height))
    image_masked.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask.convert("L")))
    image_masked = image_masked.convert("RGBa")
    for radius, repeats in [(256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1)]:
        blurred = image_masked.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(repeats):
            image_mod.alpha_composite(blurred)
    return image_mod.convert("RGB")


def img2img_pictures(req, images):
    """StableDiffusionProcessingImg2Img.init, the picture side, for one init image: returns the image the
    VAE encodes, image_mask (None without a mask or after the blank-mask fallback), the overlay, paste_to,
    and the extra_generation_params it adds, in A1111's order."""
    w, h = req["width"], req["height"]
    mode = req.get("resize_mode", 0)
    extra = {}
    crop_region = paste_to = mask_for_overlay = None
    image_mask = images[req["mask"]] if "mask" in req else None
    if image_mask is not None:
        image_mask = create_binary_mask(image_mask)
        if req["inpainting_mask_invert"]:
            image_mask = ImageOps.invert(image_mask)
            extra["Mask mode"] = "Inpaint not masked"
        blur = req["mask_blur"]  # the API's mask_blur sets mask_blur_x and mask_blur_y
        if blur > 0:
            k = 2 * int(2.5 * blur + 0.5) + 1
            image_mask = Image.fromarray(cv2.GaussianBlur(np.array(image_mask), (k, 1), blur))
            image_mask = Image.fromarray(cv2.GaussianBlur(np.array(image_mask), (1, k), blur))
            extra["Mask blur"] = blur
        if req["inpaint_full_res"]:
            mask_for_overlay = image_mask
            mask = image_mask.convert("L")
            crop_region = get_crop_region_v2(mask, req["inpaint_full_res_padding"])
            if crop_region:
                crop_region = expand_crop_region(crop_region, w, h, mask.width, mask.height)
                x1, y1, x2, y2 = crop_region
                image_mask = resize_image(2, mask.crop(crop_region), w, h)
                paste_to = (x1, y1, x2 - x1, y2 - y1)
                extra["Inpaint area"] = "Only masked"
                extra["Masked area padding"] = req["inpaint_full_res_padding"]
            else:  # blank mask: A1111 falls back to plain img2img
                crop_region = image_mask = mask_for_overlay = None
        else:
            image_mask = resize_image(mode, image_mask, w, h)
            np_mask = np.clip(np.array(image_mask).astype(np.float32) * 2, 0, 255).astype(np.uint8)
            mask_for_overlay = Image.fromarray(np_mask)
    latent_mask = image_mask

    image = images[req["init_images"][0]].convert("RGB")  # images.flatten of an RGB image
    if crop_region is None and mode != 3:
        image = resize_image(mode, image, w, h)
    overlay = None
    if image_mask is not None:
        if mask_for_overlay.size != (image.width, image.height):
            mask_for_overlay = resize_image(mode, mask_for_overlay, image.width, image.height)
        image_masked = Image.new("RGBa", (image.width, image.height))
        image_masked.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask_for_overlay.convert("L")))
        overlay = image_masked.convert("RGBA")
    if crop_region is not None:
        image = resize_image(2, image.crop(crop_region), w, h)
    if image_mask is not None and req["inpainting_fill"] != 1:
        image = masking_fill(image, latent_mask)
        if req["inpainting_fill"] == 0:
            extra["Masked content"] = "fill"
    return {"image": image, "image_mask": image_mask, "overlay": overlay, "paste_to": paste_to, "extra": extra,
            "crop_region": crop_region}


def apply_overlay(image, paste_to, overlay):
    """processing.apply_overlay (opts.overlay_inpaint on), with uncrop for "only masked": the result
    resized (crop and resize) to the crop region, pasted into a transparent canvas of the init size,
    then the overlay composited over it."""
    if overlay is None:
        return image
    if paste_to is not None:
        x, y, w, h = paste_to
        base = Image.new("RGBA", (overlay.width, overlay.height))
        base.paste(resize_image(1, image, w, h), (x, y))
        image = base
    image = image.convert("RGBA")
    image.alpha_composite(overlay)
    return image.convert("RGB")


# --- the pipeline -------------------------------------------------------------------------------


def vae_encode_mean(vae, image01):
    """sd_samplers_common.images_tensor_to_samples, but the posterior MEAN instead of sample()."""
    with torch.no_grad():
        lat = [vae.encode((img[None] * 2 - 1)).latent_dist.mean[0] for img in image01]
    return SCALE_FACTOR * torch.stack(lat)


def vae_decode(vae, latents):
    """decode_latent_batch -> decode_first_stage: first_stage_model.decode(1 / scale_factor * z), per image."""
    with torch.no_grad():
        return torch.stack([vae.decode((1.0 / SCALE_FACTOR) * latents[i:i + 1]).sample[0]
                            for i in range(latents.shape[0])])


def to_uint8(decoded):
    x = torch.clamp((decoded.float() + 1.0) / 2.0, min=0.0, max=1.0)
    return [(255.0 * np.moveaxis(s.numpy(), 0, 2)).astype(np.uint8) for s in x]


def run_case(model, req, images, dtype=torch.float32):
    steps, cfg = req["steps"], req["cfg_scale"]
    n = req["batch_size"] * req["n_iter"]
    assert req["n_iter"] == 1
    seeds = [req["seed"] + i for i in range(n)]
    subseeds = [req["subseed"] + i for i in range(n)]
    clip_skip = req["override_settings"].get("CLIP_stop_at_last_layers", 1)
    h, w = req["height"] // 8, req["width"] // 8

    cond1, cond_chunks = encode_prompt(model, req["prompt"], clip_skip)
    uncond1, uncond_chunks = encode_prompt(model, req["negative_prompt"], clip_skip)
    cond, uncond = cond1.expand(n, -1, -1).clone().to(dtype), uncond1.expand(n, -1, -1).clone().to(dtype)

    rng = ImageRNG((4, h, w), seeds, subseeds, req["subseed_strength"])
    ldm = LdmModel(model["unet"], model["alphas_cumprod"], hybrid=model["unet"].config.in_channels == 9)
    wrap = (KE.CompVisVDenoiser if model["prediction"] == "v" else KE.CompVisDenoiser)(ldm, quantize=False)
    trace = {"calls": [], "denoised": [], "x": []}
    den = CFGDenoiser(wrap, trace)
    KS.torch = TorchHijack(rng)
    out = {"cond": cond, "uncond": uncond}
    derived = {"all_seeds": seeds, "all_subseeds": subseeds,
               "cond_chunks": cond_chunks, "uncond_chunks": uncond_chunks}

    is_img2img = "init_images" in req
    init_latent = None
    nmask = None
    pictures = None
    if is_img2img:
        pictures = img2img_pictures(req, images)
        init = np.array(pictures["image"]).astype(np.float32) / 255.0
        image01 = torch.from_numpy(np.moveaxis(init, 2, 0)).unsqueeze(0).repeat(n, 1, 1, 1).to(dtype)
        init_latent = vae_encode_mean(model["vae"], image01)
        if req.get("resize_mode", 0) == 3:  # latent upscale: F.interpolate defaults (align_corners False, no antialias)
            init_latent = torch.nn.functional.interpolate(init_latent, size=(h, w), mode="bilinear")
        image_cond = init_latent.new_zeros(n, 5, 1, 1)  # img2img_image_conditioning of a non-inpainting model
        image_mask = pictures["image_mask"]
        if image_mask is not None:
            latmask = image_mask.convert("RGB").resize((w, h))  # PIL default filter for RGB: BICUBIC
            latmask = np.moveaxis(np.array(latmask, dtype=np.float32), 2, 0) / 255
            latmask = latmask[0]
            latmask = np.around(latmask)  # mask_round True
            latmask = np.tile(latmask[None], (4, 1, 1))
            mask = torch.asarray(1.0 - latmask).to(dtype)
            nmask = torch.asarray(latmask).to(dtype)
            if req["inpainting_fill"] == 2:  # latent noise: fresh generators seeded with the batch's seeds
                fill_noise = ImageRNG(init_latent.shape[1:], seeds[0:init_latent.shape[0]], None, 0).next().to(dtype)
                init_latent = init_latent * mask + fill_noise * nmask
                pictures["extra"]["Masked content"] = "latent noise"
            elif req["inpainting_fill"] == 3:
                init_latent = init_latent * mask
                pictures["extra"]["Masked content"] = "latent nothing"
            den.mask, den.nmask, den.init_latent = mask, nmask, init_latent
            out["nmask"] = nmask
        out["init_latent"] = init_latent
        if ldm.hybrid:  # inpainting_image_conditioning, inpainting_mask_weight 1.0
            if image_mask is not None:
                cm = torch.from_numpy((np.array(image_mask.convert("L")).astype(np.float32) / 255.0)[None, None])
                cm = torch.round(cm).to(dtype)
            else:
                cm = torch.ones(1, 1, *image01.shape[-2:], dtype=dtype)
            source = image01[:1] * 2 - 1
            cimg = torch.lerp(source, source * (1.0 - cm), 1.0)
            with torch.no_grad():
                cimg = SCALE_FACTOR * model["vae"].encode(cimg).latent_dist.mean
            cm = torch.nn.functional.interpolate(cm, size=init_latent.shape[-2:])
            cm = cm.expand(cimg.shape[0], -1, -1, -1)
            image_cond = torch.cat([cm, cimg], dim=1).expand(n, -1, -1, -1).clone()
            out["image_conditioning"] = image_cond
        if pictures["extra"]:
            derived["infotext_extra"] = pictures["extra"]
        if pictures["paste_to"] is not None:
            derived["crop_region"] = list(pictures["crop_region"])
        # sd_samplers_common.setup_img2img_steps, img2img_fix_steps off
        t_enc = int(min(req["denoising_strength"], 0.999) * steps)
        sigmas_full = get_sigmas(wrap, req["scheduler"], steps, req["sampler_name"])
        sigmas = sigmas_full[steps - t_enc - 1:]
        noise = rng.next().to(dtype)
        x = init_latent + noise * sigmas[0]
        derived.update({"t_enc": t_enc, "sampler_steps": t_enc + 1})
        out["sigmas_full"] = sigmas_full
    else:
        if ldm.hybrid:
            raise NotImplementedError("txt2img with an inpainting model")
        image_cond = torch.zeros(n, 5, 1, 1, dtype=dtype)  # txt2img_image_conditioning: a dummy for non-inpainting models
        sigmas = get_sigmas(wrap, req["scheduler"], steps, req["sampler_name"])
        noise = rng.next().to(dtype)
        x = noise * sigmas[0]
        derived.update({"sampler_steps": steps})
    out["noise"], out["sigmas"], out["x_start"] = noise, sigmas, x

    def callback(d):
        trace["x"].append(d["x"].clone())

    fn = getattr(KS, SAMPLERS[req["sampler_name"]])
    extra = {"cond": cond, "uncond": uncond, "cond_scale": cfg, "image_cond": image_cond}
    kwargs = {"eta": 1.0} if req["sampler_name"] == "Euler a" else {}  # opts.eta_ancestral default 1.0
    with torch.no_grad():
        samples = fn(den, x, sigmas, extra_args=extra, callback=callback, disable=True, **kwargs)
    KS.torch = torch
    n_steps = len(sigmas) - 1
    xs = trace["x"][1:] + [samples]  # the callback sees x at the start of each step
    assert len(xs) == n_steps and len(trace["denoised"]) == n_steps
    for i in range(n_steps):
        out[f"step{i + 1}"] = xs[i]
        out[f"denoised{i + 1}"] = trace["denoised"][i]
    latents = samples
    if nmask is not None:  # StableDiffusionProcessingImg2Img.sample: blend the kept area back in
        latents = samples * nmask + init_latent * den.mask
    out["latents"] = latents
    decoded = vae_decode(model["vae"], latents)
    out["decoded"] = decoded
    pngs = [Image.fromarray(a) for a in to_uint8(decoded)]
    if pictures is not None and pictures["overlay"] is not None:  # apply_overlay (opts.overlay_inpaint on)
        pngs = [apply_overlay(im, pictures["paste_to"], pictures["overlay"]) for im in pngs]
        derived["overlay_applied"] = True
    derived["unet_calls_per_step"] = sorted(set(trace["calls"]))
    return out, pngs, derived


# --- cases --------------------------------------------------------------------------------------

LONG_PROMPT = ("a detailed painting of a quiet mountain village at dawn, soft golden light on the rooftops, "
               "mist rising from the valley floor, pine forests on the slopes, a winding river with a stone "
               "bridge, smoke from the chimneys, distant snowy peaks, birds circling above the church tower, "
               "children playing near the fountain, an old man feeding pigeons in the square, market stalls "
               "with colorful awnings, highly detailed, sharp focus, warm colors")


def base_request(**kw):
    r = dict(prompt="", negative_prompt="", seed=1, subseed=-1, subseed_strength=0.0, sampler_name="Euler",
             scheduler="Automatic", steps=5, cfg_scale=7.0, width=48, height=32, batch_size=1, n_iter=1,
             eta=None, restore_faces=False, tiling=False, override_settings={})
    r.update(kw)
    return r


def cases():
    C = {}
    C["t2i_euler"] = ("sd1", base_request(prompt="a photo of a red fox in the snow", seed=1,
                                          override_settings={"sd_model_checkpoint": "sd1.safetensors"}))
    C["t2i_euler_a_batch2"] = ("sd1", base_request(prompt="a cat sitting on a wooden chair", negative_prompt="blurry, low quality",
                                                   sampler_name="Euler a", seed=2, batch_size=2, steps=4,
                                                   override_settings={"sd_model_checkpoint": "sd1.ckpt"}))
    C["t2i_dpmpp2m_karras_weights"] = ("sd1", base_request(prompt="a (red:1.3) fox in the (snow:0.8), (sunset:1.15)",
                                                           sampler_name="DPM++ 2M", scheduler="Karras", seed=3, steps=6,
                                                           override_settings={"sd_model_checkpoint": "sd1_diffusers"}))
    C["t2i_long_prompt"] = ("sd1", base_request(prompt=LONG_PROMPT, negative_prompt="ugly", seed=4, width=32, height=64,
                                                override_settings={"sd_model_checkpoint": "sd1.safetensors"}))
    C["t2i_break"] = ("sd1", base_request(prompt="a house on a hill BREAK a blue sky with clouds",
                                          negative_prompt="dark BREAK noisy", seed=5, sampler_name="DPM++ 2M",
                                          scheduler="Automatic", steps=5,
                                          override_settings={"sd_model_checkpoint": "sd1.safetensors"}))
    C["t2i_clip_skip2"] = ("sd1", base_request(prompt="portrait of a knight, (armor:1.2)", seed=6,
                                               override_settings={"sd_model_checkpoint": "sd1.safetensors",
                                                                  "CLIP_stop_at_last_layers": 2}))
    C["t2i_subseed"] = ("sd1", base_request(prompt="a lighthouse by the sea", sampler_name="Euler a", seed=7,
                                            subseed=1234, subseed_strength=0.3, steps=4,
                                            override_settings={"sd_model_checkpoint": "sd1.safetensors"}))
    C["sd2v_euler"] = ("sd2", base_request(prompt="a futuristic city at night, (neon:1.2) lights",
                                           negative_prompt="blurry", seed=8, steps=5,
                                           override_settings={"sd_model_checkpoint": "sd2_v.safetensors"}))
    C["i2i_euler_a"] = ("sd1", base_request(prompt="a watercolor landscape", sampler_name="Euler a", seed=9, steps=6,
                                            init_images=["init.png"], denoising_strength=0.6, resize_mode=0,
                                            override_settings={"sd_model_checkpoint": "sd1.safetensors"}))
    inpaint = dict(init_images=["init.png"], mask="mask.png", mask_blur=0, inpainting_fill=1, inpaint_full_res=False,
                   inpainting_mask_invert=0, resize_mode=0)
    C["inpaint_sd1_euler"] = ("sd1", base_request(prompt="a red ball", seed=10, steps=6, denoising_strength=0.75,
                                                  override_settings={"sd_model_checkpoint": "sd1.safetensors"}, **inpaint))
    C["inpaint_9ch_dpmpp2m"] = ("inpaint", base_request(prompt="a red ball", negative_prompt="blurry", seed=11, steps=5,
                                                        sampler_name="DPM++ 2M", scheduler="Karras", denoising_strength=1.0,
                                                        override_settings={"sd_model_checkpoint": "sd1_inpainting.safetensors"},
                                                        **inpaint))
    # img2img / inpaint options (resize modes, mask blur, masked content, inversion, "only masked").
    b = dict(init_images=["init_b.png"], denoising_strength=0.7)
    C["i2i_resize1_crop"] = ("sd1", base_request(prompt="a watercolor landscape", width=32, height=24, seed=12, steps=4, resize_mode=1,
                                                 override_settings={"sd_model_checkpoint": "sd1.safetensors"}, **b))
    C["i2i_resize2_fill"] = ("sd1", base_request(prompt="a watercolor landscape", width=32, height=24, seed=13, steps=4, resize_mode=2,
                                                 override_settings={"sd_model_checkpoint": "sd1.safetensors"}, **b))
    C["i2i_resize3_latent"] = ("sd1", base_request(prompt="a watercolor landscape", width=32, height=24, seed=14, steps=4, resize_mode=3,
                                                   override_settings={"sd_model_checkpoint": "sd1.safetensors"}, **b))
    C["inpaint_blur4_fill"] = ("sd1", base_request(prompt="a red ball", seed=15, steps=4, denoising_strength=0.75,
                                                   override_settings={"sd_model_checkpoint": "sd1.safetensors"},
                                                   **dict(inpaint, mask_blur=4, inpainting_fill=0)))
    C["inpaint_latent_noise_batch2"] = ("sd1", base_request(prompt="a red ball", sampler_name="Euler a", seed=16, steps=4,
                                                            batch_size=2, denoising_strength=0.8,
                                                            override_settings={"sd_model_checkpoint": "sd1.safetensors"},
                                                            **dict(inpaint, mask_blur=2, inpainting_fill=2)))
    C["inpaint_9ch_nothing_invert"] = ("inpaint", base_request(prompt="a red ball", seed=17, steps=4, sampler_name="DPM++ 2M",
                                                               scheduler="Karras", denoising_strength=1.0,
                                                               override_settings={"sd_model_checkpoint": "sd1_inpainting.safetensors"},
                                                               **dict(inpaint, mask_blur=3, inpainting_fill=3,
                                                                      inpainting_mask_invert=1)))
    C["inpaint_only_masked_pad8"] = ("sd1", base_request(prompt="a red ball", seed=18, width=32, height=24, steps=4, denoising_strength=0.75,
                                                         override_settings={"sd_model_checkpoint": "sd1.safetensors"},
                                                         **dict(inpaint, mask="mask_small.png", mask_blur=1,
                                                                inpaint_full_res=True, inpaint_full_res_padding=8)))
    C["inpaint_9ch_only_masked_edge"] = ("inpaint", base_request(prompt="a red ball", seed=19, steps=4, width=32, height=32,
                                                                 denoising_strength=0.9,
                                                                 override_settings={"sd_model_checkpoint": "sd1_inpainting.safetensors"},
                                                                 **dict(inpaint, mask="mask_edge.png", mask_blur=4,
                                                                        inpainting_fill=0, inpaint_full_res=True,
                                                                        inpaint_full_res_padding=8)))
    C["inpaint_9ch_resize0_blur"] = ("inpaint", base_request(prompt="a red ball", seed=20, width=32, height=24, steps=4, denoising_strength=0.8,
                                                             override_settings={"sd_model_checkpoint": "sd1_inpainting.safetensors"},
                                                             **dict(inpaint, init_images=["init_b.png"], mask="mask_b.png",
                                                                    mask_blur=4, resize_mode=0)))
    C["inpaint_resize2_mask"] = ("sd1", base_request(prompt="a red ball", seed=21, width=32, height=24, steps=4, denoising_strength=0.75,
                                                     override_settings={"sd_model_checkpoint": "sd1.safetensors"},
                                                     **dict(inpaint, init_images=["init_b.png"], mask="mask_b.png",
                                                            mask_blur=2, resize_mode=2)))
    return C if SEED is None else vary_cases(C, refgen_args.choices(SEED, "sd_pipeline.cases"))


PLAIN_PROMPTS = ["a small boat on a calm lake", "an old stone bridge in autumn", "a bowl of oranges on a table",
                 "a snowy mountain cabin at night", "a green parrot on a branch", "a city street in the rain",
                 "a field of sunflowers under a blue sky", "a teapot", ""]
NEGATIVE_PROMPTS = ["blurry", "low quality, jpeg artifacts", "dark", "text, watermark", ""]


def vary_cases(C, rng):
    """--seed: the same kinds of cases (sampler, schedule, model, options, the prompts whose syntax a case
    is about) with other seeds and variation seeds, other plain prompts and negative prompts, and other
    sizes (multiples of 8; any size runs through A1111's resize rules)."""
    for name, (_, req) in C.items():
        req["seed"] = rng.randrange(0, 2 ** 32)
        if req["subseed"] != -1:
            req["subseed"] = rng.randrange(0, 2 ** 32)
        plain = req["prompt"] != LONG_PROMPT and not re.search(r"[()]|BREAK", req["prompt"])
        if plain:
            req["prompt"] = rng.choice(PLAIN_PROMPTS)
        if req["negative_prompt"] and "BREAK" not in req["negative_prompt"]:
            req["negative_prompt"] = rng.choice(NEGATIVE_PROMPTS)
        req["width"], req["height"] = 8 * rng.randint(3, 8), 8 * rng.randint(3, 8)
    return C


def input_sizes():
    """(width, height) of init.png and its masks, and of init_b.png / mask_b.png: the committed 48x32 and
    40x56, or with --seed other multiples of 8 (at least 32, so the small mask padded by 8 stays inside)."""
    rng = refgen_args.choices(SEED, "sd_pipeline.images")
    if rng is None:
        return (48, 32), (40, 56)
    side = lambda: 8 * rng.randint(4, 8)
    return (side(), side()), (side(), side())


def make_images(gen):
    # Every position below is written for the committed sizes (48x32 and 40x56) and scaled to the
    # sizes of input_sizes(): the scale is 1 and the images the committed ones without --seed.
    (W, H), (WB, HB) = input_sizes()
    x_ = lambda v: round(v * W / 48)
    y_ = lambda v: round(v * H / 32)
    # a smooth colour gradient with a few blocks, 48x32 RGB; a binary mask (white = inpaint)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    img = np.stack([xx / (W - 1) * 200 + 30, yy / (H - 1) * 180 + 40, 128 + 60 * np.sin(xx / 7 + yy / 5)], axis=-1)
    img[y_(4):y_(14), x_(6):x_(20)] = [220, 40, 60]
    img += torch.rand(H, W, 3, generator=gen).numpy() * 20
    init = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    m = np.zeros((H, W), np.uint8)
    m[y_(8):y_(24), x_(16):x_(40)] = 255
    out = {"init.png": init, "mask.png": Image.fromarray(m, "L")}
    # Inputs of the img2img / inpaint option cases, from their own generator (the ones above stay as they were).
    g2 = torch.Generator().manual_seed(refgen_args.seeded(20250301, SEED, "sd_pipeline.images_b"))
    xb = lambda v: round(v * WB / 40)
    yb = lambda v: round(v * HB / 56)
    yy, xx = np.mgrid[0:HB, 0:WB].astype(np.float32)  # another size and aspect: 40x56 (portrait)
    img = np.stack([200 - yy / (HB - 1) * 150, 60 + xx / (WB - 1) * 160, 100 + 80 * np.cos(xx / 6 - yy / 9)], axis=-1)
    img[yb(30):yb(44), xb(8):xb(26)] = [40, 200, 90]
    img += torch.rand(HB, WB, 3, generator=g2).numpy() * 24
    out["init_b.png"] = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    m = np.zeros((HB, WB), np.uint8)
    m[yb(22):yb(48), xb(6):xb(30)] = 255  # a rectangle with a soft (gray) step on one side: masks are not thresholded
    m[yb(22):yb(48), xb(30):xb(30) + 3] = 160
    out["mask_b.png"] = Image.fromarray(m, "L")
    m = np.zeros((H, W), np.uint8)  # small, away from the borders (also after padding 8)
    m[y_(13):y_(13) + 6, x_(20):x_(20) + 9] = 255
    out["mask_small.png"] = Image.fromarray(m, "L")
    ry, rx = np.mgrid[0:H, 0:W].astype(np.float32)  # an ellipse cut by the right border
    m = (((rx - (W - 4)) / 9) ** 2 + ((ry - y_(12)) / 7) ** 2 <= 1).astype(np.uint8) * 255
    out["mask_edge.png"] = Image.fromarray(m, "L")
    return out


# --- checks on the prompt handling ------------------------------------------------------------------


def check_prompts():
    assert parse_prompt("a (red:1.3) fox in the (snow:0.8), (sunset:1.15)") == [
        ["a ", 1.0], ["red", 1.3], [" fox in the ", 1.0], ["snow", 0.8], [", ", 1.0], ["sunset", 1.15]]
    assert parse_prompt("a house on a hill BREAK a blue sky with clouds") == [
        ["a house on a hill", 1.0], ["BREAK", -1], ["a blue sky with clouds", 1.0]]
    assert parse_prompt("") == [["", 1.0]]
    assert parse_prompt("portrait of a knight, (armor:1.2)") == [["portrait of a knight, ", 1.0], ["armor", 1.2]]
    # The same prompts in the A1111 parser set (tests/data/prompt_weights), where present.
    pw = os.path.join(ROOT, "tests", "data", "prompt_weights", "prompt_weights.json")
    if os.path.exists(pw):
        checked = 0
        for c in json.load(open(pw))["cases"]:
            t = c["text"]
            if re.search(r"[\[\]\\]", t) or "(" in RE_WEIGHTED.sub("", t) or ")" in RE_WEIGHTED.sub("", t):
                continue
            if re.search(r":\s", t) or "AND" in t:
                continue
            try:
                mine = parse_prompt(t)
            except (AssertionError, ValueError):
                continue
            ref = [[a, float(b)] for a, b in c["a1111"]["result"]]
            assert [[a, round(b, 6)] for a, b in mine] == [[a, round(b, 6)] for a, b in ref], (t, mine, ref)
            checked += 1
        print(f"parser agrees with A1111 on {checked} prompts of prompt_weights.json", file=sys.stderr)


# --- main ---------------------------------------------------------------------------------------


def save_diffusers(path, unet, vae, text):
    from diffusers import StableDiffusionPipeline
    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                          clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon")
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=None, unet=unet, scheduler=sched,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.to(torch.float16)
    pipe.save_pretrained(path, safe_serialization=True)
    pipe.to(torch.float32)


def check_layouts(sd1, unet, vae, text):
    """The three SD1 layouts hold the same values: the .ckpt loads (weights_only) to the same dict, and
    the diffusers folder holds the diffusers-named tensors the converters give."""
    from safetensors.torch import load_file
    ck = torch.load(os.path.join(OUT, "sd1.ckpt"), weights_only=True)
    assert set(ck["state_dict"]) == set(sd1) and all(torch.equal(ck["state_dict"][k], sd1[k]) for k in sd1)
    d = os.path.join(OUT, "sd1_diffusers")
    for sub, fn, module in (("unet", "diffusion_pytorch_model.safetensors", unet),
                            ("vae", "diffusion_pytorch_model.safetensors", vae), ("text_encoder", "model.safetensors", text)):
        got = load_file(os.path.join(d, sub, fn))
        ref = module.state_dict()
        assert set(got) == set(ref), (sub, set(got) ^ set(ref))
        assert all(got[k].dtype == torch.float16 and torch.equal(got[k].float(), ref[k]) for k in ref), sub
    sched = json.load(open(os.path.join(d, "scheduler", "scheduler_config.json")))
    assert torch.equal(ldm_alphas_cumprod(sched["beta_start"], sched["beta_end"], sched["num_train_timesteps"]),
                       sd1["alphas_cumprod"])


def unet_attention(cfg):
    heads = cfg["attention_head_dim"]
    heads = list(heads) if isinstance(heads, (list, tuple)) else [heads] * len(cfg["block_out_channels"])
    dims = [c // h for c, h in zip(cfg["block_out_channels"], heads)]
    assert all(c % h == 0 for c, h in zip(cfg["block_out_channels"], heads))
    return {"heads_per_level": heads, "mid_block_heads": heads[-1], "head_dim_per_level": dims,
            # which rule gives them (easel's UnetOptions: num_heads for SD 1.x, head_dim for SD 2.x)
            "num_heads": heads[0] if len(set(heads)) == 1 else None,
            "head_dim": dims[0] if len(set(dims)) == 1 and len(set(heads)) > 1 else None}


def write_info(sd1_unet, inp_unet, sd2_unet, vae, acp):
    def unet_info(u):
        cfg = {k: v for k, v in dict(u.config).items() if not k.startswith("_")}
        return {"diffusers_config": cfg, "attention": unet_attention(cfg), "norm_groups": cfg["norm_num_groups"]}
    text1 = {"class": "transformers.CLIPTextModel", "config": SD1_TEXT, "prefix": "cond_stage_model.transformer.",
             "output": "last_hidden_state; CLIP skip k > 1: final_layer_norm(hidden_states[-k])",
             "pad_id": EOS, "heads": SD1_TEXT["num_attention_heads"]}
    text2 = {"class": "open_clip.CLIP text tower (ldm FrozenOpenCLIPEmbedder, layer 'penultimate')",
             "text_cfg": SD2_TEXT, "prefix": "cond_stage_model.model.",
             "output": "ln_final(output of resblocks[:-1]) whatever CLIP skip is", "pad_id": 0,
             "heads": SD2_TEXT["heads"]}
    vae_info = {"diffusers_config": {k: v for k, v in dict(vae.config).items() if not k.startswith("_")},
                "prefix": "first_stage_model.", "scale_factor": SCALE_FACTOR,
                "norm_groups": vae.config.norm_num_groups}
    sched = {"beta_schedule": "scaled_linear (ldm 'linear')", "linear_start": 0.00085, "linear_end": 0.012,
             "num_timesteps": 1000, "alphas_cumprod": "float32 of ldm's float64 computation "
             "(betas = linspace(sqrt(0.00085), sqrt(0.012), 1000, float64)^2; cumprod(1 - betas)); "
             "stored as 'alphas_cumprod' in every single file; equal to it for the diffusers folder's "
             "scheduler_config when computed the ldm way (float64)"}
    sd1_common = {"family": "sd1", "prediction_type": "epsilon", "unet": unet_info(sd1_unet), "text_encoder": text1,
                  "vae": vae_info, "schedule": sched, "same_weights_as": ["sd1.safetensors", "sd1.ckpt", "sd1_diffusers"]}
    info = {
        "versions": VERSIONS,
        "models": {
            "sd1.safetensors": dict(sd1_common, layout="original single file (ldm naming), safetensors, f16 + f32 alphas_cumprod + int64 position_ids"),
            "sd1.ckpt": dict(sd1_common, layout="torch.save({'state_dict': <the sd1.safetensors dict>, 'global_step': 470000, 'epoch': 6}) (zip pickle)"),
            "sd1_diffusers": dict(sd1_common, layout="diffusers folder (StableDiffusionPipeline.save_pretrained, f16, no tokenizer)"),
            "sd1_inpainting.safetensors": {"family": "sd1", "variant": "inpainting (UNet in_channels 9: [latent 4, mask 1, masked-image latent 4])",
                                           "prediction_type": "epsilon", "unet": unet_info(inp_unet), "text_encoder": text1,
                                           "vae": vae_info, "schedule": sched, "layout": "original single file"},
            "sd2_v.safetensors": {"family": "sd2", "prediction_type": "v",
                                  "prediction_type_note": "v cannot be recognised from this file: ComfyUI's rule (std of output_blocks.11.1.transformer_blocks.0.norm1.bias > 0.09) needs a full-depth UNet; tests pass 'v' explicitly",
                                  "unet": unet_info(sd2_unet), "text_encoder": text2, "vae": vae_info, "schedule": sched,
                                  "layout": "original single file (open_clip text naming)"},
        },
    }
    with open(os.path.join(OUT, "info.json"), "w") as f:
        json.dump(info, f, indent=1, default=list)
        f.write("\n")


def load_stored_cases():
    """The cases already in the set. They are kept byte for byte: torch's CPU kernels round differently
    from one CPU to another (the set was first made on another machine), so a rerun reproduces them only
    to float rounding; rewriting them would churn the set for nothing. Delete cases.json to remake all."""
    path = os.path.join(OUT, "cases.json")
    if not os.path.exists(path):
        return {"cases": {}, "tensors": {}}
    from safetensors.torch import load_file
    return {"cases": json.load(open(path))["cases"], "tensors": load_file(os.path.join(OUT, "cases.safetensors"))}


def keep_stored_case(cname, stored, out, pngs, tensors, case_json):
    """Keeps a stored case after checking that this run agrees with it (1e-4 relative to each tensor's
    largest value, PNGs to +-1: the tolerances the C++ test holds easel to)."""
    for k, v in out.items():
        ref = stored["tensors"][f"{cname}.{k}"]
        err = float((v.float() - ref).abs().max()) / max(float(ref.abs().max()), 1e-12)
        assert err <= 1e-4, (cname, k, err)
        tensors[f"{cname}.{k}"] = ref
    assert sum(1 for k in stored["tensors"] if k.startswith(cname + ".")) == len(out), cname
    for i, im in enumerate(pngs):
        ref = np.array(Image.open(os.path.join(OUT, f"{cname}_{i}.png")).convert("RGB")).astype(int)
        assert np.abs(np.array(im).astype(int) - ref).max() <= 1, cname
    case_json[cname] = stored["cases"][cname]
    print(f"{cname}: kept as stored (this run agrees)", file=sys.stderr)


def main():
    global TOKENIZER, OUT, SEED, META
    args = refgen_args.parse("sd_pipeline_tiny", __doc__)
    OUT, SEED = args.out, args.seed
    if SEED is not None:
        META = {"versions": json.dumps(dict(VERSIONS, seed=str(SEED)), sort_keys=True)}
    TOKENIZER = Tokenizer()
    check_prompts()
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(refgen_args.seeded(20240611, SEED, "sd_pipeline.models"))
    acp = ldm_alphas_cumprod()

    vae = make_vae(gen)
    sd1_text = make_sd1_text(gen)
    sd1_unet = make_unet(UNET_SD1, gen)
    inp_unet = make_unet(UNET_SD1_INPAINT, gen)
    sd2_text = make_sd2_text(gen)
    sd2_unet = make_unet(UNET_SD2, gen)
    vae_ldm = vae_to_ldm(vae)

    files = {}
    sd1 = single_file([unet_to_ldm(sd1_unet), vae_ldm, sd1_text_to_ldm(sd1_text)], acp)
    save_file(sd1, os.path.join(OUT, "sd1.safetensors"), metadata=META)
    torch.save({"state_dict": sd1, "global_step": 470000, "epoch": 6}, os.path.join(OUT, "sd1.ckpt"))
    save_diffusers(os.path.join(OUT, "sd1_diffusers"), sd1_unet, vae, sd1_text)
    inp = single_file([unet_to_ldm(inp_unet), vae_ldm, sd1_text_to_ldm(sd1_text)], acp)
    save_file(inp, os.path.join(OUT, "sd1_inpainting.safetensors"), metadata=META)
    sd2 = single_file([unet_to_ldm(sd2_unet), vae_ldm, sd2_text_to_ldm(sd2_text)], acp)
    save_file(sd2, os.path.join(OUT, "sd2_v.safetensors"), metadata=META)

    check_layouts(sd1, sd1_unet, vae, sd1_text)
    write_info(sd1_unet, inp_unet, sd2_unet, vae, acp)

    models = {
        "sd1": {"kind": "sd1", "text": sd1_text, "unet": sd1_unet, "vae": vae, "alphas_cumprod": acp, "prediction": "eps"},
        "inpaint": {"kind": "sd1", "text": sd1_text, "unet": inp_unet, "vae": vae, "alphas_cumprod": acp, "prediction": "eps"},
        "sd2": {"kind": "sd2", "text": sd2_text, "unet": sd2_unet, "vae": vae, "alphas_cumprod": acp, "prediction": "v"},
    }
    models64 = {}
    for k, m in models.items():
        m64 = dict(m)
        for part in ("unet", "vae"):  # the text encoder stays f32 (transformers' CLIP mask breaks in f64)
            m64[part] = copy.deepcopy(m[part]).double()
        models64[k] = m64
    images = make_images(gen)
    for name, im in images.items():
        im.save(os.path.join(OUT, name))
    images = {k: Image.open(os.path.join(OUT, k)) for k in images}

    stored = load_stored_cases()
    tensors, case_json = {}, {}
    for cname, (mkey, req) in cases().items():
        out, pngs, derived = run_case(models[mkey], req, images)
        if cname in stored["cases"] and stored["cases"][cname]["request"] == req:
            keep_stored_case(cname, stored, out, pngs, tensors, case_json)
            continue
        for k, v in out.items():
            tensors[f"{cname}.{k}"] = v.float().contiguous().clone()
        names = []
        for i, im in enumerate(pngs):
            fn = f"{cname}_{i}.png"
            im.save(os.path.join(OUT, fn))
            names.append(fn)
        case_json[cname] = {"request": req, "model_file": req["override_settings"]["sd_model_checkpoint"],
                            "prediction_type": models[mkey]["prediction"], "images": names, **derived}
        out64, _, _ = run_case(models64[mkey], req, images, torch.float64)
        dev = {}
        for k in ("latents", "decoded"):
            a, b = out[k].double(), out64[k]
            dev[k] = {"max_abs_fp32_vs_fp64": float((a - b).abs().max()), "max_abs": float(b.abs().max())}
        case_json[cname]["fp32_vs_fp64"] = dev
        d = out["decoded"]
        print(f"{cname}: {derived['unet_calls_per_step']} decoded range [{d.min():.3f}, {d.max():.3f}] "
              f"latents std {out['latents'].std():.3f}", file=sys.stderr)

    save_file(tensors, os.path.join(OUT, "cases.safetensors"), metadata=META)
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump({"versions": VERSIONS, "cases": case_json}, f, indent=1)
        f.write("\n")
    total = 0
    for dp, _, fs in os.walk(OUT):
        total += sum(os.path.getsize(os.path.join(dp, x)) for x in fs)
    print(f"wrote {OUT}: {total / 1e6:.2f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
