#!/usr/bin/env python3
"""Writes full-size random-weight Stable Diffusion checkpoints for benchmarks (never committed):

  <out>/sd15_random.safetensors    SD 1.5 shape: UNet 320/640/1280/1280, CLIP ViT-L/14 text (12 x 768),
                                   VAE 128/256/512/512; original single-file (ldm) naming, f16,
                                   alphas_cumprod f32
  <out>/sd21_v_random.safetensors  SD 2.1 768-v shape: UNet with linear proj / head dim 64 / 1024 context,
                                   OpenCLIP ViT-H/14 text tower only (24 x 1024, as SD2 files hold it);
                                   output_blocks.11.1.transformer_blocks.0.norm1.bias has std 0.3 so that
                                   ComfyUI's v-prediction rule recognises the file (no v_pred key)

Run:  /work/venv-refgen/bin/python tools/bench/make_sd_checkpoints.py /work/bench-models

The modules keep their default (PyTorch) init so activations stay finite; the names come from the
same diffusers-inverse converters as tools/refgen/sd_pipeline.py (checked against diffusers' own
converters there). The weights are random: images are noise, timings are real.
"""

import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "refgen"))
import sd_pipeline as P  # noqa: E402  (conversions, schedule)
import open_clip  # noqa: E402
from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel  # noqa: E402

UNET_COMMON = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                   block_out_channels=(320, 640, 1280, 1280),
                   down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                   up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, norm_num_groups=32)
SD15_UNET = dict(UNET_COMMON, cross_attention_dim=768, attention_head_dim=8)
SD21_UNET = dict(UNET_COMMON, sample_size=96, cross_attention_dim=1024, attention_head_dim=[5, 10, 20, 20],
                 use_linear_projection=True, upcast_attention=True)
VAE = dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
           up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[128, 256, 512, 512], layers_per_block=2,
           latent_channels=4, norm_num_groups=32, sample_size=512, scaling_factor=0.18215)
CLIP_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768)
OPENCLIP_H_TEXT = dict(context_length=77, vocab_size=49408, width=1024, heads=16, layers=24)


def write(path, parts, acp):
    sd = P.single_file(parts, acp)
    save_file(sd, path, metadata={"generator": "tools/bench/make_sd_checkpoints.py", "weights": "random"})
    print(f"{path}: {os.path.getsize(path) / 2**30:.2f} GiB, {len(sd)} tensors", file=sys.stderr)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "bench-models"
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    acp = P.ldm_alphas_cumprod()
    with torch.no_grad():
        vae_ldm = P.vae_to_ldm(AutoencoderKL(**VAE).eval())

        unet = UNet2DConditionModel(**SD15_UNET).eval()
        text = CLIPTextModel(CLIPTextConfig(**CLIP_L)).eval()
        write(os.path.join(out, "sd15_random.safetensors"), [P.unet_to_ldm(unet), vae_ldm, P.sd1_text_to_ldm(text)], acp)
        del unet, text

        unet = UNet2DConditionModel(**SD21_UNET).eval()
        # Loaders that follow ComfyUI recognise SD2 v-prediction by std(output_blocks.11.1.transformer_blocks.0
        # .norm1.bias) > 0.09 (real 768-v files: ~0.3; default init: zeros): give that one bias a spread.
        unet.up_blocks[3].attentions[2].transformer_blocks[0].norm1.bias.normal_(0.0, 0.3)
        # the text tower with a token-sized vision stub, dropped as ldm's FrozenOpenCLIPEmbedder drops model.visual
        clip = open_clip.CLIP(embed_dim=1024, vision_cfg=dict(image_size=16, patch_size=8, width=16, layers=1, head_width=8),
                              text_cfg=OPENCLIP_H_TEXT, quick_gelu=False).eval()
        del clip.visual
        write(os.path.join(out, "sd21_v_random.safetensors"), [P.unet_to_ldm(unet), vae_ldm, P.sd2_text_to_ldm(clip)], acp)


if __name__ == "__main__":
    main()
