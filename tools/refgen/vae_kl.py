#!/usr/bin/env python3
"""Writes golden set tests/data/vae_kl_tiny/: the Stable Diffusion VAE (diffusers AutoencoderKL).

Run from the source root:  /work/venv-refgen/bin/python tools/refgen/vae_kl.py [--out DIR] [--seed N]
(--seed N: other weights, inputs and case sizes of the same layout; see refgen_args.py)

A tiny random AutoencoderKL with the real SD architecture (DownEncoderBlock2D / UpDecoderBlock2D
with ResnetBlock2D, Downsample2D with the asymmetric (0, 1, 0, 1) pad, UNetMidBlock2D with one
single-head attention between two resnets, GroupNorm eps 1e-6, SiLU, quant_conv/post_quant_conv,
4 latent channels, 4 levels so images are 8x the latents, layers_per_block 2 as in SD). Only the
widths are tiny: block_out_channels (8, 16, 16, 16) with norm_num_groups 4 (the real VAE has
(128, 256, 512, 512) and 32 groups; 32 groups need >= 32 channels, which would not fit the set's
size budget; the group count is in config.json).

Weights are written in both namings:
  weights_diffusers.safetensors      diffusers' AutoencoderKL state dict (vae/diffusion_pytorch_model)
  weights_ldm_original.safetensors   the original ldm naming under "first_stage_model.", as inside
                                     SD 1.x/2.x single-file checkpoints (attention q/k/v/proj_out as
                                     1x1 convs [C, C, 1, 1], decoder.up.N in reversed order)
The original naming is made by inverting diffusers' own converter, and the generator asserts that
diffusers.loaders.single_file_utils.convert_ldm_vae_checkpoint turns it back into exactly the
diffusers state dict.

cases.safetensors, for every case <c>:
  <c>.image      [N, 3, H, W] in [-1, 1]
  <c>.moments    AutoencoderKL.encode's moments: the quant_conv output [N, 8, H/8, W/8] (mean, logvar)
  <c>.latents    [N, 4, H/8, W/8] random latents (unscaled: the pipeline applies scaling_factor)
  <c>.decoded    AutoencoderKL.decode(latents) [N, 3, H, W]
  <c>.act.<module path>  forward-hook output of that module (diffusers names) in those two passes
"""

import json
import os
import platform
import sys

import diffusers
import numpy as np
import safetensors
import torch
from diffusers import AutoencoderKL
from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
from safetensors.torch import save_file

import refgen_args

OUT = None  # set by main from --out
SEED = None  # --seed: None for the committed set
PREFIX = "first_stage_model."

CONFIG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4,
    block_out_channels=[8, 16, 16, 16],
    layers_per_block=2,
    act_fn="silu",
    latent_channels=4,
    norm_num_groups=4,
    sample_size=32,
    scaling_factor=0.18215,
)

# name -> (batch, height, width)
CASES = {
    "case0": (2, 16, 16),
    "case1": (1, 24, 40),
    "case2": (1, 40, 8),
}


def seeded_cases(seed):
    """With --seed: three cases of other batch sizes and shapes (multiples of 8, one of them 8 wide
    or tall, so a latent side is 1); the committed CASES otherwise."""
    rng = refgen_args.choices(seed, "vae_kl.cases")
    if rng is None:
        return CASES
    side = lambda: 8 * rng.randint(1, 6)
    return {"case0": (rng.randint(1, 3), side(), side()), "case1": (1, side(), side()),
            "case2": (1, 8, side()) if rng.random() < 0.5 else (1, side(), 8)}


def make_model():
    torch.manual_seed(refgen_args.seeded(0, SEED, "vae_kl.init"))
    model = AutoencoderKL(**CONFIG).eval()
    g = torch.Generator().manual_seed(refgen_args.seeded(1, SEED, "vae_kl.weights"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith(".weight"):  # GroupNorm scale: around 1
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:  # keep the default (Kaiming) scale so activations stay O(1) through the blocks
                p.copy_(p.std() * torch.randn(p.shape, generator=g) if p.numel() > 1 else p)
    return model


def diffusers_to_ldm(sd, num_blocks):
    """The exact inverse of convert_ldm_vae_checkpoint (names and attention weight shapes)."""
    out = {}
    for k, v in sd.items():
        o = k
        for part in ("encoder", "decoder"):
            o = o.replace(f"{part}.conv_norm_out.", f"{part}.norm_out.")
            o = o.replace(f"{part}.mid_block.resnets.0.", f"{part}.mid.block_1.")
            o = o.replace(f"{part}.mid_block.resnets.1.", f"{part}.mid.block_2.")
            o = o.replace(f"{part}.mid_block.attentions.0.", f"{part}.mid.attn_1.")
        for i in range(num_blocks):
            o = o.replace(f"encoder.down_blocks.{i}.resnets.", f"encoder.down.{i}.block.")
            o = o.replace(f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample.")
            j = num_blocks - 1 - i
            o = o.replace(f"decoder.up_blocks.{i}.resnets.", f"decoder.up.{j}.block.")
            o = o.replace(f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{j}.upsample.")
        o = o.replace("conv_shortcut", "nin_shortcut")
        if ".mid.attn_1." in o:
            o = (o.replace("group_norm.", "norm.").replace("to_q.", "q.").replace("to_k.", "k.")
                  .replace("to_v.", "v.").replace("to_out.0.", "proj_out."))
            if o.endswith(".weight") and v.dim() == 2:  # linear -> 1x1 conv
                v = v[:, :, None, None]
        assert o not in out, o
        out[o] = v.contiguous().clone()
    return out


TRACED = (
    ["encoder.conv_in"]
    + [f"encoder.down_blocks.{i}" for i in range(4)]
    + ["encoder.mid_block.resnets.0", "encoder.mid_block.attentions.0", "encoder.mid_block",
       "encoder.conv_norm_out", "encoder.conv_out", "quant_conv", "post_quant_conv", "decoder.conv_in",
       "decoder.mid_block.resnets.0", "decoder.mid_block.attentions.0", "decoder.mid_block"]
    + [f"decoder.up_blocks.{i}" for i in range(4)]
    + ["decoder.conv_norm_out", "decoder.conv_out"]
)


def run(model, image, latents, acts=None):
    hooks = []
    if acts is not None:
        modules = dict(model.named_modules())
        for name in TRACED:
            hooks.append(modules[name].register_forward_hook(
                lambda m, i, o, name=name: acts.__setitem__(name, o.detach().float().clone())))
    with torch.no_grad():
        moments = model.encode(image).latent_dist.parameters
        decoded = model.decode(latents).sample
    for h in hooks:
        h.remove()
    return moments, decoded


def main():
    global OUT, SEED
    args = refgen_args.parse("vae_kl_tiny", __doc__)
    OUT, SEED = args.out, args.seed
    cases_spec = seeded_cases(SEED)
    model = make_model()
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}

    # Original naming, checked against diffusers' own converter.
    original = diffusers_to_ldm(sd, len(CONFIG["block_out_channels"]))
    back = convert_ldm_vae_checkpoint({PREFIX + k: v for k, v in original.items()}, dict(model.config))
    assert set(back) == set(sd), (set(back) ^ set(sd))
    for k in sd:
        assert back[k].shape == sd[k].shape and torch.equal(back[k], sd[k]), k
    assert any(".nin_shortcut." in k for k in original) and any(k.endswith("attn_1.q.weight") for k in original)

    versions = {
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "generator": "tools/refgen/vae_kl.py",
    }
    if SEED is not None:
        versions["seed"] = str(SEED)
    os.makedirs(OUT, exist_ok=True)
    save_file(sd, os.path.join(OUT, "weights_diffusers.safetensors"), metadata=versions)
    save_file({PREFIX + k: v for k, v in original.items()}, os.path.join(OUT, "weights_ldm_original.safetensors"),
              metadata=versions)

    g = torch.Generator().manual_seed(refgen_args.seeded(2, SEED, "vae_kl.inputs"))
    cases = {}
    fp64 = {}
    model64 = make_model().double()
    latent_channels = CONFIG["latent_channels"]
    down = 2 ** (len(CONFIG["block_out_channels"]) - 1)
    for name, (n, h, w) in cases_spec.items():
        image = (torch.rand(n, 3, h, w, generator=g) * 2 - 1)
        latents = torch.randn(n, latent_channels, h // down, w // down, generator=g)
        acts = {}
        moments, decoded = run(model, image, latents, acts)
        assert moments.shape == (n, 2 * latent_channels, h // down, w // down)
        assert decoded.shape == image.shape
        cases[f"{name}.image"] = image
        cases[f"{name}.latents"] = latents
        cases[f"{name}.moments"] = moments
        cases[f"{name}.decoded"] = decoded
        for k, v in acts.items():
            cases[f"{name}.act.{k}"] = v
        m64, d64 = run(model64, image.double(), latents.double())
        fp64[name] = {
            "moments_max_abs_fp32_vs_fp64": float((m64 - moments.double()).abs().max()),
            "moments_max_abs": float(moments.abs().max()),
            "decoded_max_abs_fp32_vs_fp64": float((d64 - decoded.double()).abs().max()),
            "decoded_max_abs": float(decoded.abs().max()),
            "act_max_abs": {k: float(v.abs().max()) for k, v in acts.items()},
        }
    cases = {k: v.contiguous().float() for k, v in cases.items()}
    save_file(cases, os.path.join(OUT, "cases.safetensors"), metadata=versions)

    config = {
        "diffusers_config": {k: v for k, v in dict(model.config).items() if not k.startswith("_")},
        "original_prefix": PREFIX,
        "note": "scaling_factor is applied by the pipeline (latents * scaling_factor before the UNet, "
                "/ scaling_factor before decode), never inside the VAE",
        "cases": {k: {"batch": n, "height": h, "width": w} for k, (n, h, w) in cases_spec.items()},
        "fp32_vs_fp64": fp64,
        "versions": versions,
    }
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(config, f, indent=1, sort_keys=True, default=list)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {OUT}: {len(sd)} weights, {len(cases)} case tensors, {total / 1e6:.2f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
