#!/usr/bin/env python3
"""Golden set `clip_text_tiny`: the CLIP text encoders of Stable Diffusion 1.x and 2.x on tiny
random configs with the real architectures.

  openai    transformers.CLIPTextModel (quick_gelu, causal), the SD 1.x text encoder; weights in
            transformers naming as SD1 single files hold them under `cond_stage_model.transformer.`
            (with the int64 `text_model.embeddings.position_ids` buffer old checkpoints carry).
  openclip  open_clip's CLIP text tower (gelu, causal), the SD 2.x text encoder; weights in
            open_clip naming as SD2 single files hold them under `cond_stage_model.model.` (the
            ldm FrozenOpenCLIPEmbedder deletes `model.visual`, so only the text side and
            `logit_scale` are there), and the same weights converted to transformers naming with
            diffusers' own converter (as a diffusers `text_encoder` folder holds them) plus
            `text_projection.weight` (CLIPTextModelWithProjection, as SDXL's text_encoder_2).
            The generator asserts that CLIPTextModelWithProjection with the converted weights
            reproduces open_clip's hidden states.

Run: /work/venv-refgen/bin/python tools/refgen/clip_text.py [--out DIR] [--seed N]  (writes tests/data/clip_text_tiny/)
(--seed N: other weights, token ids, prompt lengths, batch sizes, layer and head counts; see refgen_args.py)
"""
import json
import os
import sys

import numpy as np
import torch
import open_clip
import transformers
import diffusers
import safetensors
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint

import refgen_args

OUT = None  # set by main from --out
SEED = None  # --seed: None for the committed set

VOCAB = 256          # tiny vocabulary; BOS / EOS are its two highest ids, as 49406 / 49407 are in CLIP's
BOS, EOS = VOCAB - 2, VOCAB - 1
CONTEXT = 77
WIDTH = 32
HEADS = 4            # head size 8: NOT width / 64, so the test must take heads from config.json
LAYERS = 3
MLP = 64             # intermediate size 2 x width (real models: 4 x): derived from shapes
PROJ = 24            # open_clip text projection (embed_dim)

VERSIONS = {
    "torch": torch.__version__,
    "transformers": transformers.__version__,
    "open_clip_torch": open_clip.__version__,
    "diffusers": diffusers.__version__,
    "safetensors": safetensors.__version__,
}
# One metadata key: safetensors writes its metadata map in hash order, so several keys would make
# the files differ byte for byte from run to run.
META = {"versions": json.dumps(VERSIONS, sort_keys=True)}


def randomize(module, gen):
    """Random values in every parameter (LayerNorm weights around 1) so that no tensor is trivial."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "logit_scale" in name:
                continue
            v = torch.randn(p.shape, generator=gen) * 0.1
            if name.endswith("token_embedding.weight"):
                v *= 5
            if (".ln_" in name or "layer_norm" in name or "ln_final" in name) and name.endswith("weight"):
                v += 1.0
            p.copy_(v)


def token_cases(gen, pad_id):
    """Token-id batches [B, 77] as each tokenizer lays them out: BOS, words, EOS, padding."""
    def seq(n_words):
        words = torch.randint(1, BOS, (n_words,), generator=gen).tolist()
        ids = [BOS] + words + [EOS]
        return ids + [pad_id] * (CONTEXT - len(ids))
    rng = refgen_args.choices(SEED, f"clip_text.cases.{pad_id}")
    if rng is not None:  # other prompt lengths and batch sizes; still a full chunk and an empty prompt
        return {
            "case0": torch.tensor([seq(rng.randint(1, 74)) for _ in range(rng.randint(1, 3))], dtype=torch.int64),
            "case1": torch.tensor([seq(0), seq(75)] if rng.random() < 0.5 else [seq(75), seq(0)], dtype=torch.int64),
        }
    return {
        "case0": torch.tensor([seq(12)], dtype=torch.int64),
        "case1": torch.tensor([seq(75), seq(0)], dtype=torch.int64),  # a full chunk and an empty prompt
    }


def openai_flavour(gen, cases, acts_out, config_out):
    cfg = CLIPTextConfig(vocab_size=VOCAB, hidden_size=WIDTH, intermediate_size=MLP, num_hidden_layers=LAYERS,
                         num_attention_heads=HEADS, max_position_embeddings=CONTEXT, hidden_act="quick_gelu",
                         layer_norm_eps=1e-5, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=EOS,
                         projection_dim=WIDTH)
    model = CLIPTextModel(cfg).eval()
    randomize(model, gen)
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    # SD1 checkpoints (transformers < 4.31 saved it) carry the position_ids buffer beside the weights.
    sd["text_model.embeddings.position_ids"] = torch.arange(CONTEXT, dtype=torch.int64)[None]
    save_file(sd, os.path.join(OUT, "openai_transformers.safetensors"), metadata=META)

    hooks, captured = [], {}
    def hook(name):
        def f(_m, _i, o):
            captured[name] = (o[0] if isinstance(o, tuple) else o).detach().clone()
        return f
    tm = model.text_model
    hooks.append(tm.embeddings.register_forward_hook(hook("text_model.embeddings")))
    for i, layer in enumerate(tm.encoder.layers):
        hooks.append(layer.register_forward_hook(hook(f"text_model.encoder.layers.{i}")))
    hooks.append(tm.final_layer_norm.register_forward_hook(hook("text_model.final_layer_norm")))

    for case, ids in cases.items():
        captured.clear()
        with torch.no_grad():
            out = model(input_ids=ids, output_hidden_states=True)
            acts = dict(captured)  # before the clip-skip pass below re-fires the final_layer_norm hook
            # A1111 "CLIP skip" (sd_hijack_clip.FrozenCLIPEmbedderWithCustomWords.encode_with_transformers):
            # final_layer_norm(hidden_states[-n]).
            skip2 = tm.final_layer_norm(out.hidden_states[-2])
        p = f"openai.{case}"
        acts_out[f"{p}.input_ids"] = ids
        for name, t in acts.items():
            if name != "text_model.final_layer_norm":  # that one is .out
                acts_out[f"{p}.act.{name}"] = t
        for i, h in enumerate(out.hidden_states[1:]):  # the hook and hidden_states agree
            assert torch.equal(h, acts[f"text_model.encoder.layers.{i}"])
        assert torch.equal(out.last_hidden_state, acts["text_model.final_layer_norm"])
        acts_out[f"{p}.out"] = out.last_hidden_state
        acts_out[f"{p}.clip_skip2"] = skip2
        acts_out[f"{p}.pooled"] = out.pooler_output
    for h in hooks:
        h.remove()
    config_out["openai"] = {
        "reference": "transformers.CLIPTextModel",
        "weights": {"transformers": "openai_transformers.safetensors"},
        "config": cfg.to_diff_dict(),
        "vocab_size": VOCAB, "width": WIDTH, "layers": LAYERS, "heads": HEADS, "intermediate_size": MLP,
        "hidden_act": "quick_gelu", "bos_id": BOS, "eos_id": EOS, "pad_id": EOS, "projection_dim": None,
    }


def openclip_flavour(gen, cases, acts_out, config_out):
    text_cfg = dict(context_length=CONTEXT, vocab_size=VOCAB, width=WIDTH, heads=HEADS, layers=LAYERS,
                    mlp_ratio=MLP / WIDTH)
    vision_cfg = dict(image_size=16, patch_size=8, width=16, layers=1, head_width=8)
    clip = open_clip.CLIP(embed_dim=PROJ, vision_cfg=vision_cfg, text_cfg=text_cfg, quick_gelu=False).eval()
    randomize(clip, gen)
    # What ldm's FrozenOpenCLIPEmbedder keeps (it deletes model.visual) = SD2's cond_stage_model.model.*
    sd = {k: v.contiguous() for k, v in clip.state_dict().items() if not k.startswith("visual.")}
    save_file(sd, os.path.join(OUT, "openclip_open_clip.safetensors"), metadata=META)

    # transformers naming through diffusers' single-file converter (it skips text_projection, as
    # SD2's text_encoder is a CLIPTextModel); the projection as CLIPTextModelWithProjection holds it.
    prefix = "cond_stage_model.model."
    converted = convert_open_clip_checkpoint(None, {prefix + k: v for k, v in sd.items()}, prefix=prefix)
    converted = {k: v.contiguous() for k, v in converted.items()}
    converted["text_projection.weight"] = sd["text_projection"].T.contiguous()
    save_file(converted, os.path.join(OUT, "openclip_transformers.safetensors"),
              metadata=META)

    hf_cfg = CLIPTextConfig(vocab_size=VOCAB, hidden_size=WIDTH, intermediate_size=MLP, num_hidden_layers=LAYERS,
                            num_attention_heads=HEADS, max_position_embeddings=CONTEXT, hidden_act="gelu",
                            layer_norm_eps=1e-5, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=0,
                            projection_dim=PROJ)
    hf = CLIPTextModelWithProjection(hf_cfg).eval()
    missing, unexpected = hf.load_state_dict(converted, strict=False)
    assert not unexpected and all("position_ids" in m for m in missing), (missing, unexpected)

    captured = {}
    hooks = []
    def hook(name):
        def f(_m, _i, o):
            captured[name] = o.detach().clone()
        return f
    for i, r in enumerate(clip.transformer.resblocks):
        hooks.append(r.register_forward_hook(hook(f"text_model.encoder.layers.{i}")))
    hooks.append(clip.ln_final.register_forward_hook(hook("text_model.final_layer_norm")))

    for case, ids in cases.items():
        captured.clear()
        with torch.no_grad():
            emb = clip.token_embedding(ids) + clip.positional_embedding
            projected = clip.encode_text(ids)  # runs the hooks: resblocks, ln_final, argmax pool, projection
            acts = dict(captured)  # the penultimate run below re-fires the hooks: keep the full run's
            final = acts["text_model.final_layer_norm"]
            pooled = final[torch.arange(ids.shape[0]), ids.argmax(dim=-1)]
            assert torch.allclose(pooled @ clip.text_projection, projected, atol=1e-6)
            # ldm FrozenOpenCLIPEmbedder(layer="penultimate"), SD 2.x: all resblocks but the last, then ln_final.
            x = emb
            for r in clip.transformer.resblocks[:-1]:
                x = r(x, attn_mask=clip.attn_mask)
            skip2 = clip.ln_final(x)
            hf_out = hf(input_ids=ids, output_hidden_states=True)
        p = f"openclip.{case}"
        acts_out[f"{p}.input_ids"] = ids
        acts_out[f"{p}.act.text_model.embeddings"] = emb
        for i in range(LAYERS):
            acts_out[f"{p}.act.text_model.encoder.layers.{i}"] = acts[f"text_model.encoder.layers.{i}"]
        acts_out[f"{p}.out"] = final
        acts_out[f"{p}.clip_skip2"] = skip2
        acts_out[f"{p}.pooled"] = pooled
        acts_out[f"{p}.projected"] = projected
        # transformers with the converted weights = open_clip, every layer.
        hs = hf_out.hidden_states
        assert (hs[0] - emb).abs().max() <= 1e-5
        for i in range(LAYERS):
            d = (hs[i + 1] - acts_out[f"{p}.act.text_model.encoder.layers.{i}"]).abs().max().item()
            assert d <= 1e-5, (case, i, d)
        assert (hf_out.last_hidden_state - final).abs().max() <= 1e-5
        assert (hf_out.text_embeds - projected).abs().max() <= 1e-5
    for h in hooks:
        h.remove()
    config_out["openclip"] = {
        "reference": "open_clip.CLIP text tower (open_clip.transformer.TextTransformer blocks)",
        "weights": {"open_clip": "openclip_open_clip.safetensors",
                    "transformers": "openclip_transformers.safetensors"},
        "text_cfg": text_cfg, "embed_dim": PROJ,
        "transformers_config": hf_cfg.to_diff_dict(),
        "vocab_size": VOCAB, "width": WIDTH, "layers": LAYERS, "heads": HEADS, "intermediate_size": MLP,
        "hidden_act": "gelu", "bos_id": BOS, "eos_id": EOS, "pad_id": 0, "projection_dim": PROJ,
    }


def main():
    global OUT, SEED, LAYERS, HEADS, META
    args = refgen_args.parse("clip_text_tiny", __doc__)
    OUT, SEED = args.out, args.seed
    rng = refgen_args.choices(SEED, "clip_text.shape")
    if rng is not None:  # other depths and head sizes (heads stay something width / 64 cannot give)
        LAYERS, HEADS = rng.randint(2, 4), rng.choice([2, 4, 8])
        META = {"versions": json.dumps(dict(VERSIONS, seed=str(SEED)), sort_keys=True)}
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(refgen_args.seeded(0, SEED, "clip_text.init"))
    torch.use_deterministic_algorithms(True)
    gen = torch.Generator().manual_seed(refgen_args.seeded(1234, SEED, "clip_text.weights"))
    acts, config = {}, {}
    openai_flavour(gen, token_cases(gen, pad_id=EOS), acts, config)
    openclip_flavour(gen, token_cases(gen, pad_id=0), acts, config)
    acts = {k: (v.contiguous() if v.dtype == torch.int64 else v.float().contiguous()) for k, v in acts.items()}
    save_file(acts, os.path.join(OUT, "cases.safetensors"), metadata=META)
    config["versions"] = VERSIONS
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print(f"wrote {OUT}: {len(acts)} tensors in cases.safetensors, {total / 1024:.0f} KiB in all")


if __name__ == "__main__":
    sys.exit(main())
