#!/usr/bin/env python3
"""Golden set tests/data/unet_sd_tiny: the Stable Diffusion 1.x / 2.x UNet (diffusers
UNet2DConditionModel) on tiny random configs of the real architectures.

Run from the source root:  /work/venv-refgen/bin/python tools/refgen/unet_sd.py [--out DIR] [--seed N]
(--seed N: other weights, inputs, latent sizes, timesteps and context lengths; see refgen_args.py)

Configs (see config.json for the full diffusers configs):
  sd1          SD 1.x shape: CrossAttnDownBlock2D x2 + DownBlock2D, UNetMidBlock2DCrossAttn,
               UpBlock2D + CrossAttnUpBlock2D x2, layers_per_block 2, conv proj_in/proj_out,
               a fixed head count (8), GEGLU, GroupNorm(32).
  sd2          SD 2.x shape: use_linear_projection, head count per level as a list chosen so the
               head dim is constant (as SD2's 64), upcast_attention (as SD 2.1-v), layers_per_block 1.
  sd1_inpaint  in_channels 9 (the inpainting UNet), layers_per_block 1.

Weights: one file per config, `<cfg>_weights_sd_original.safetensors`, in the original ldm
single-file naming under `model.diffusion_model.` (input_blocks / middle_block / output_blocks,
time_embed.0/2, out.0/2, SpatialTransformer ...), stored as f16 as real checkpoints ship; the
reference runs in f32 on exactly those values (weights rounded to f16, then upcast). The original
naming is made by inverting diffusers' own converter
(diffusers.loaders.single_file_utils.convert_ldm_unet_checkpoint): the generator asserts that
converting it back gives exactly the diffusers state dict (names, shapes, values).
`<cfg>_name_map_original_to_diffusers.json` maps every original name to the diffusers name; the
diffusers-named weights are that same file renamed through the map (kept out of the set to hold
it inside its data budget; the test builds them in memory and loads both namings).

cases.safetensors: `<cfg>.<case>.{sample,timestep,context,out}` and per-block activations
`<cfg>.<case>.act.<module>` for conv_in, time_proj, time_embedding, down_blocks.N, mid_block,
up_blocks.N, conv_norm_out (before the SiLU), conv_out. Down blocks return a tuple
(hidden_states, res_samples): the activation stored is hidden_states (after the downsampler,
if any). Cases: case0 batch 1 square; case1 batch 2 with two different contexts and timesteps as
classifier-free guidance runs, non-square; case2 a latent size that is not a multiple of
2^(levels-1) (diffusers forwards upsample_size to the upsamplers).
"""

import json
import os
import platform
import sys

import diffusers
import safetensors
import torch
from diffusers import UNet2DConditionModel
from diffusers.loaders.single_file_utils import LDM_UNET_KEY, convert_ldm_unet_checkpoint
from safetensors.torch import save_file

import refgen_args

OUT = None  # set by main from --out
SEED = None  # --seed: None for the committed set

CONFIGS = {
    "sd1": dict(
        in_channels=4, out_channels=4, block_out_channels=(32, 32, 32), layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=48, attention_head_dim=8, use_linear_projection=False, upcast_attention=False,
    ),
    "sd2": dict(
        in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=[2, 4], use_linear_projection=True, upcast_attention=True,
    ),
    "sd1_inpaint": dict(
        in_channels=9, out_channels=4, block_out_channels=(32, 32), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=48, attention_head_dim=8, use_linear_projection=False, upcast_attention=False,
    ),
}
# How the heads are given for each config (not visible in the weight shapes).
ATTENTION = {"sd1": {"num_heads": 8}, "sd2": {"head_dim": 16}, "sd1_inpaint": {"num_heads": 8}}


# --- diffusers naming -> original ldm naming (the inverse of convert_ldm_unet_checkpoint) ----------

RESNET_RENAMES = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
                  ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")]
TOP = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
       "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}


def resnet_rest(rest):
    for a, b in RESNET_RENAMES:
        if rest.startswith(a + "."):
            return b + rest[len(a):]
    raise ValueError(rest)


def to_original(name, lpb, up_has_attention):
    p = name.split(".")
    for k, v in TOP.items():
        if name.startswith(k + "."):
            return v + name[len(k):]
    if p[0] == "down_blocks":
        b, kind = int(p[1]), p[2]
        if kind == "downsamplers":  # down_blocks.b.downsamplers.0.conv.X
            return f"input_blocks.{(b + 1) * (lpb + 1)}.0.op.{p[-1]}"
        j, rest = int(p[3]), ".".join(p[4:])
        i = 1 + b * (lpb + 1) + j
        return f"input_blocks.{i}.0.{resnet_rest(rest)}" if kind == "resnets" else f"input_blocks.{i}.1.{rest}"
    if p[0] == "mid_block":
        j, rest = int(p[2]), ".".join(p[3:])
        return f"middle_block.{2 * j}.{resnet_rest(rest)}" if p[1] == "resnets" else f"middle_block.1.{rest}"
    if p[0] == "up_blocks":
        b, kind = int(p[1]), p[2]
        if kind == "upsamplers":
            i = b * (lpb + 1) + lpb
            return f"output_blocks.{i}.{2 if up_has_attention[b] else 1}.conv.{p[-1]}"
        j, rest = int(p[3]), ".".join(p[4:])
        i = b * (lpb + 1) + j
        return f"output_blocks.{i}.0.{resnet_rest(rest)}" if kind == "resnets" else f"output_blocks.{i}.1.{rest}"
    raise ValueError(name)


def original_state_dict(model, cfg):
    sd = model.state_dict()
    up_attn = ["CrossAttn" in t for t in cfg["up_block_types"]]
    original = {LDM_UNET_KEY + to_original(k, cfg["layers_per_block"], up_attn): v for k, v in sd.items()}
    assert len(original) == len(sd), "two diffusers names map to one original name"
    back = convert_ldm_unet_checkpoint(original, dict(model.config))
    assert set(back) == set(sd), (set(back) ^ set(sd))
    for k, v in sd.items():
        assert back[k].shape == v.shape and torch.equal(back[k], v), k
    name_map = {LDM_UNET_KEY + to_original(k, cfg["layers_per_block"], up_attn): k for k in sd}
    return original, name_map


# --- cases -----------------------------------------------------------------------------------------

def case_inputs(cfg, levels, gen):
    cin, ctx = cfg["in_channels"], cfg["cross_attention_dim"]
    m = 2 ** (levels - 1)
    odd = (2 * m - 1, 3 * m - 2 if levels > 2 else 2 * m + 1)  # not multiples of 2^(levels-1)
    specs = [("case0", 1, (2 * m, 2 * m), [999.0], 77),
             ("case1", 2, (2 * m, 3 * m), [801.0, 13.5], 77),
             ("case2", 1, odd, [421.25], 77)]
    rng = refgen_args.choices(SEED, f"unet_sd.cases.{cin}.{levels}.{ctx}")
    if rng is not None:  # other sizes (case2 still not a multiple of 2^(levels-1)), timesteps, lengths
        t = lambda: round(rng.uniform(0, 999), 2)

        def size():
            # Not 1x1 at the deepest level: a group norm of one value per group is 0 / sqrt(eps),
            # so torch refuses it for a batch of 1 and, for a batch of 2, its own fp32 output is
            # 4e-4 (relative) from fp64 there: no reference for a 1e-4 comparison.
            a, b = rng.randint(1, 3), rng.randint(1, 3)
            return (m * a, m * (b if a * b > 1 else 2))
        specs = [("case0", 1, size(), [t()], 77),
                 ("case1", 2, size(), [t(), t()], rng.choice([77, 154])),
                 ("case2", 1, (m * rng.randint(1, 3) + rng.choice([-1, 1]), m * rng.randint(1, 2) + 1), [t()], 77)]
    for name, n, (h, w), t, tokens in specs:
        yield name, {
            "sample": torch.randn(n, cin, h, w, generator=gen),
            "timestep": torch.tensor(t, dtype=torch.float32),
            "context": torch.randn(n, tokens, ctx, generator=gen),
        }


def run(model, inputs, acts=None):
    hooks = []
    if acts is not None:
        def hook(name):
            def f(_module, _inp, out):
                acts[name] = (out[0] if isinstance(out, tuple) else out).detach().clone()
            return f
        names = ["conv_in", "time_proj", "time_embedding", "mid_block", "conv_norm_out", "conv_out"]
        names += [f"down_blocks.{i}" for i in range(len(model.down_blocks))]
        names += [f"up_blocks.{i}" for i in range(len(model.up_blocks))]
        for n in names:
            hooks.append(model.get_submodule(n).register_forward_hook(hook(n)))
    with torch.no_grad():
        out = model(inputs["sample"], inputs["timestep"], encoder_hidden_states=inputs["context"]).sample
    for h in hooks:
        h.remove()
    return out


def main():
    global OUT, SEED
    args = refgen_args.parse("unet_sd_tiny", __doc__)
    OUT, SEED = args.out, args.seed
    os.makedirs(OUT, exist_ok=True)
    versions = {"torch": torch.__version__, "diffusers": diffusers.__version__,
                "safetensors": safetensors.__version__, "python": platform.python_version()}
    if SEED is not None:
        versions["seed"] = str(SEED)
    config_json, cases = {}, {}
    for seed, (name, cfg) in enumerate(CONFIGS.items()):
        torch.manual_seed(refgen_args.seeded(1000 + seed, SEED, f"unet_sd.init.{name}"))
        model = UNet2DConditionModel(sample_size=16, norm_num_groups=32, **cfg).eval()
        # Random weights of a realistic scale (the default init leaves zero convs out and tiny norms).
        gen = torch.Generator().manual_seed(refgen_args.seeded(2000 + seed, SEED, f"unet_sd.weights.{name}"))
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if pname.endswith("bias"):
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
                elif "norm" in pname.split(".")[-2]:
                    p.copy_(1.0 + torch.randn(p.shape, generator=gen) * 0.1)
                else:
                    fan_in = p[0].numel()
                    p.copy_(torch.randn(p.shape, generator=gen) / fan_in ** 0.5)
            for p in model.parameters():
                p.copy_(p.half().float())  # the stored f16 values, exactly
        original, name_map = original_state_dict(model, cfg)
        save_file({k: v.half().contiguous() for k, v in original.items()},
                  os.path.join(OUT, f"{name}_weights_sd_original.safetensors"),
                  metadata={"generator": "tools/refgen/unet_sd.py", "config": name, **versions})
        with open(os.path.join(OUT, f"{name}_name_map_original_to_diffusers.json"), "w") as f:
            json.dump(name_map, f, indent=0, sort_keys=True)

        model64 = UNet2DConditionModel.from_config(model.config).double().eval()
        model64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
        levels = len(cfg["block_out_channels"])
        fp64 = {}
        for cname, inputs in case_inputs(cfg, levels, gen):
            acts = {}
            out = run(model, inputs, acts)
            out64 = run(model64, {k: v.double() for k, v in inputs.items()})
            fp64[cname] = {"max_abs_fp32_vs_fp64": float((out.double() - out64).abs().max()),
                           "max_abs_out": float(out.abs().max()), "rms_out": float(out.pow(2).mean().sqrt())}
            key = f"{name}.{cname}"
            for k, v in inputs.items():
                cases[f"{key}.{k}"] = v.contiguous()
            cases[f"{key}.out"] = out.contiguous()
            for k, v in acts.items():
                cases[f"{key}.act.{k}"] = v.float().contiguous()
        config_json[name] = {"diffusers_config": dict(model.config), "attention": ATTENTION[name],
                             "fp32_vs_fp64": fp64}
    save_file(cases, os.path.join(OUT, "cases.safetensors"),
              metadata={"generator": "tools/refgen/unet_sd.py", **versions})
    config_json["versions"] = versions
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(config_json, f, indent=1, sort_keys=True, default=list)
    print("wrote", OUT, file=sys.stderr)


if __name__ == "__main__":
    main()
