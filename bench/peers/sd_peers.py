#!/usr/bin/env python3
"""Side-by-side SD 1.x/2.x benchmark: easel vs stable-diffusion.cpp vs diffusers on the same machine.

Each engine runs in its own process on the same checkpoint (a full-size random-weight file from
tools/bench/make_sd_checkpoints.py), 512x512, Euler, 4 steps, CFG 7, the same thread count.
Reported per engine: seconds per sampling step, VAE decode seconds, whole run seconds, peak RSS,
and each as a ratio to easel. Developer tooling only: needs the peers' Python packages:
  sd.cpp:    python3 -m venv ../venv-peers && ../venv-peers/bin/pip install stable-diffusion-cpp-python
  diffusers: the refgen venv (tools/refgen/requirements.txt)

  python3 bench/peers/sd_peers.py --model /work/bench-models/sd15_f16.safetensors --threads 2 \
      --easel build/easel --sdcpp-python ../venv-peers/bin/python --diffusers-python ../venv-refgen/bin/python
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
    import torch
    from diffusers import StableDiffusionPipeline, EulerDiscreteScheduler
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    pipe = StableDiffusionPipeline.from_single_file(args.model, torch_dtype=torch.float32, safety_checker=None)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    t_load = time.perf_counter() - t0
    step_times = []
    last = [0.0]

    def on_step(p, i, t, kw):
        now = time.perf_counter()
        step_times.append(now - last[0])
        last[0] = now
        return kw

    with torch.no_grad():
        t1 = time.perf_counter()
        prompt_embeds = pipe.encode_prompt(PROMPT, "cpu", 1, True)
        last[0] = time.perf_counter()
        latents = pipe(prompt_embeds=prompt_embeds[0], negative_prompt_embeds=prompt_embeds[1], width=args.size,
                       height=args.size, num_inference_steps=args.steps, guidance_scale=7.0, output_type="latent",
                       generator=torch.Generator().manual_seed(1), callback_on_step_end=on_step).images
        t_vae = time.perf_counter()
        image = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
        vae_s = time.perf_counter() - t_vae
        total = time.perf_counter() - t1
    return {"load_s": t_load, "total_s": total, "step_s": sum(step_times) / len(step_times), "vae_s": vae_s}


def child_easel(args):
    report = os.path.join(args.out, "easel_report.json")
    t0 = time.perf_counter()
    subprocess.run([args.easel, "--threads", str(args.threads), "generate", "--model", args.model, "--prompt", PROMPT,
                    "--steps", str(args.steps), "--sampler", "Euler", "--width", str(args.size), "--height",
                    str(args.size), "--seed", "1", "--output", os.path.join(args.out, "easel.png"),
                    "--report", report], check=True)
    wall = time.perf_counter() - t0
    with open(report) as f:
        r = json.load(f)
    return {"load_s": r.get("load_s"), "total_s": r.get("generate_s", wall), "step_s": r["step_s"], "vae_s": r["vae_s"]}


CHILDREN = {"easel": child_easel, "sdcpp": child_sdcpp, "diffusers": child_diffusers}


def run_child(engine, args):
    python = {"easel": sys.executable, "sdcpp": args.sdcpp_python, "diffusers": args.diffusers_python}[engine]
    cmd = [python, os.path.abspath(__file__), "--child", engine, "--model", args.model, "--threads", str(args.threads),
           "--steps", str(args.steps), "--size", str(args.size), "--out", args.out, "--easel", args.easel]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    # Each child reports its own peak RSS (RUSAGE_CHILDREN here would mix the engines).
    return json.loads(proc.stdout.strip().splitlines()[-1])


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
    ap.add_argument("--engines", default="easel,sdcpp,diffusers")
    args = ap.parse_args()
    if args.child:
        r = CHILDREN[args.child](args)
        # Peak RSS of this process and of its own children (easel runs as one), in bytes.
        r["peak_rss_bytes"] = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                                  resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) * 1024
        print(json.dumps(r))
        return
    results = {e: run_child(e, args) for e in args.engines.split(",")}
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
