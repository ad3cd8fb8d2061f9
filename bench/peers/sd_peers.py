#!/usr/bin/env python3
"""Side-by-side SD 1.x/2.x benchmark: easel vs stable-diffusion.cpp vs diffusers on the same machine.

Each engine runs in its own process on the same checkpoint (a full-size random-weight file from
tools/bench/make_sd_checkpoints.py), 512x512, Euler, 4 steps, CFG 7, the same thread count.
Reported per engine: seconds per sampling step, VAE decode seconds, whole run seconds, peak RSS,
and each as a ratio to easel. Developer tooling only: needs the peers' Python packages:
  sd.cpp:    python3 -m venv ../venv-peers && ../venv-peers/bin/pip install stable-diffusion-cpp-python
  diffusers: the refgen venv (tools/refgen/requirements.txt)

  python3 bench/peers/sd_peers.py --model /work/bench-models/sd15_random.safetensors --threads 2 \
      --easel build/easel [--easel-baseline OLD/easel] [--repeat 3] --sdcpp-python ../venv-peers/bin/python --diffusers-python ../venv-refgen/bin/python
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

PROMPT = "a photograph of an astronaut riding a horse"


# ---- engines, each run as `python sd_peers.py --child ENGINE ...` so RSS is its own --------------

def child_sdcpp(args):
    import stable_diffusion_cpp as sdcpp
    step_times = []
    last = [time.perf_counter()]

    def on_progress(step, steps, t):
        now = time.perf_counter()
        step_times.append(now - last[0])
        last[0] = now

    t0 = time.perf_counter()
    sd = sdcpp.StableDiffusion(model_path=args.model, n_threads=args.threads, verbose=False)
    t_load = time.perf_counter() - t0
    t1 = time.perf_counter()
    last[0] = t1
    images = sd.generate_image(prompt=PROMPT, width=args.size, height=args.size, sample_method="euler",
                               sample_steps=args.steps, cfg_scale=7.0, seed=1, progress_callback=on_progress)
    total = time.perf_counter() - t1
    images[0].save(os.path.join(args.out, "sdcpp.png"))
    # sd.cpp calls the progress callback for sampling steps and again for the VAE stage; the
    # sampling steps are the first `steps` calls after text encoding (first call includes encoding).
    sampling = step_times[1:args.steps] if len(step_times) >= args.steps else step_times
    return {"load_s": t_load, "total_s": total, "step_s": sum(sampling) / max(len(sampling), 1),
            "vae_s": step_times[-1] if len(step_times) > args.steps else None}


def child_diffusers(args):
    """diffusers + torch (f32 on the CPU). from_single_file would fetch configs from the Hub, so the
    modules are built from the SD 1.5 configs of tools/bench/make_sd_checkpoints.py and loaded from the
    single file through diffusers' own ldm converters. The text encoder runs on fixed token ids (its
    time is not compared; no tokenizer files are needed)."""
    import torch
    from safetensors.torch import load_file
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import (convert_ldm_clip_checkpoint, convert_ldm_unet_checkpoint,
                                                     convert_ldm_vae_checkpoint)
    from transformers import CLIPTextConfig, CLIPTextModel
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "bench"))
    import make_sd_checkpoints as M
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    ckpt = load_file(args.model)  # f16; load_state_dict copies into the f32 modules
    unet = UNet2DConditionModel(**M.SD15_UNET).eval()
    unet.load_state_dict(convert_ldm_unet_checkpoint(ckpt, dict(unet.config)))
    vae = AutoencoderKL(**M.VAE).eval()
    vae.load_state_dict(convert_ldm_vae_checkpoint(ckpt, dict(vae.config)))
    text = CLIPTextModel(CLIPTextConfig(**M.CLIP_L)).eval()
    text.load_state_dict(convert_ldm_clip_checkpoint(ckpt), strict=False)
    del ckpt
    sched = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    t_load = time.perf_counter() - t0
    step_times = []
    with torch.no_grad():
        t1 = time.perf_counter()
        ids = torch.tensor([[49406, 320, 1125, 539, 550, 18376, 6765, 320, 4558, 49407] + [49407] * 67])
        empty = torch.tensor([[49406, 49407] + [49407] * 75])
        context = torch.cat([text(empty)[0], text(ids)[0]])
        sched.set_timesteps(args.steps)
        g = torch.Generator().manual_seed(1)
        latents = torch.randn(1, 4, args.size // 8, args.size // 8, generator=g) * sched.init_noise_sigma
        for t in sched.timesteps:
            ts = time.perf_counter()
            x_in = sched.scale_model_input(torch.cat([latents] * 2), t)
            uncond, cond = unet(x_in, t, encoder_hidden_states=context).sample.chunk(2)
            latents = sched.step(uncond + 7.0 * (cond - uncond), t, latents).prev_sample
            step_times.append(time.perf_counter() - ts)
        t_vae = time.perf_counter()
        vae.decode(latents / vae.config.scaling_factor).sample
        vae_s = time.perf_counter() - t_vae
        total = time.perf_counter() - t1
    return {"load_s": t_load, "total_s": total, "step_s": sum(step_times) / len(step_times), "vae_s": vae_s}


def child_easel(args, binary=None, name="easel"):
    report = os.path.join(args.out, f"{name}_report.json")
    t0 = time.perf_counter()
    subprocess.run([binary or args.easel, "--threads", str(args.threads), "generate", "--model", args.model, "--prompt", PROMPT,
                    "--steps", str(args.steps), "--sampler", "Euler", "--width", str(args.size), "--height",
                    str(args.size), "--seed", "1", "--output", os.path.join(args.out, f"{name}.png"),
                    "--report", report], check=True)
    wall = time.perf_counter() - t0
    with open(report) as f:
        r = json.load(f)
    return {"load_s": r.get("load_s"), "total_s": r.get("generate_s", wall), "step_s": r["step_s"], "vae_s": r["vae_s"]}


def child_easel_baseline(args):
    """Another easel build (e.g. the previous commit's) on the same model, to show a change costs nothing."""
    return child_easel(args, args.easel_baseline, "easel_baseline")


CHILDREN = {"easel": child_easel, "easel_baseline": child_easel_baseline, "sdcpp": child_sdcpp,
            "diffusers": child_diffusers}


def run_child(engine, args):
    python = {"easel": sys.executable, "easel_baseline": sys.executable, "sdcpp": args.sdcpp_python, "diffusers": args.diffusers_python}[engine]
    cmd = [python, os.path.abspath(__file__), "--child", engine, "--model", args.model, "--threads", str(args.threads),
           "--steps", str(args.steps), "--size", str(args.size), "--out", args.out, "--easel", args.easel]
    if args.easel_baseline:
        cmd += ["--easel-baseline", args.easel_baseline]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    # Each child reports its own peak RSS (RUSAGE_CHILDREN here would mix the engines).
    return json.loads(proc.stdout.strip().splitlines()[-1])


def best_of(runs):
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[0]
    best = dict(min(ok, key=lambda r: r["step_s"]))
    for k in ("vae_s", "total_s"):
        if all(r.get(k) for r in ok):
            best[k] = min(r[k] for r in ok)
    best["peak_rss_bytes"] = max(r["peak_rss_bytes"] for r in ok)
    best["runs"] = len(ok)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--child")
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--out", default=tempfile.mkdtemp(prefix="sd_peers_"))
    ap.add_argument("--easel", default="build/easel")
    ap.add_argument("--sdcpp-python", default=sys.executable)
    ap.add_argument("--diffusers-python", default=sys.executable)
    ap.add_argument("--easel-baseline", help="a second easel binary, run as engine easel_baseline")
    ap.add_argument("--engines", default="easel,sdcpp,diffusers")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs per engine, interleaved (easel, peers, easel, ...); the fastest step and "
                         "decode times and the largest peak RSS are reported")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.child:
        r = CHILDREN[args.child](args)
        # Peak RSS of this process and of its own children (easel runs as one), in bytes.
        r["peak_rss_bytes"] = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                                  resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) * 1024
        print(json.dumps(r))
        return
    engines = args.engines.split(",")
    if args.easel_baseline and "easel_baseline" not in engines:
        engines.append("easel_baseline")
    runs = {e: [] for e in engines}
    for _ in range(args.repeat):
        for e in engines:
            runs[e].append(run_child(e, args))
    results = {e: best_of(r) for e, r in runs.items()}
    base = results.get("easel", {})
    print(f"model {args.model} ({os.path.getsize(args.model) / 1e9:.2f} GB), {args.size}x{args.size}, Euler, "
          f"{args.steps} steps, {args.threads} threads; outputs in {args.out}")
    print(f"{'engine':<10} {'s/step':>8} {'ratio':>6} {'VAE s':>7} {'ratio':>6} {'total s':>8} {'peak RSS':>9} {'ratio':>6}")
    for e, r in results.items():
        if "error" in r:
            print(f"{e:<10} failed: {r['error']}")
            continue
        def ratio(k):
            return f"{r[k] / base[k]:.2f}" if base.get(k) and r.get(k) else "-"
        vae = f"{r['vae_s']:.2f}" if r.get("vae_s") else "-"
        print(f"{e:<10} {r['step_s']:8.2f} {ratio('step_s'):>6} {vae:>7} {ratio('vae_s'):>6} {r['total_s']:8.1f} "
              f"{r['peak_rss_bytes'] / 2**30:8.2f}G {ratio('peak_rss_bytes'):>6}")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
