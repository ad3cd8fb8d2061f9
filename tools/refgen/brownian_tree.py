#!/usr/bin/env python3
"""Writes tests/data/brownian_tree/: A1111's Brownian-tree noise for the SDE samplers.

Run from the source root:  /work/venv-refgen/bin/python tools/refgen/brownian_tree.py [--out DIR] [--seed N]
(--seed N: other tree and sampler seeds, the same kinds of cases; see refgen_args.py)

What runs what (see tests/data/brownian_tree/README.md):
  * numpy 1.26.4 `SeedSequence` (generate_state uint32 / uint64), run as is.
  * torchsde 0.2.6 `BrownianTree` (-> `BrownianInterval`, halfway tree, tol 1e-6, pool 24) and
    k-diffusion 0.1.1.post1 `BatchedBrownianTree` / `BrownianTreeNoiseSampler` (sampling.py, loaded
    by file path through tools/refgen/samplers.py), run as is, with A1111's `torchsde_randn`
    (sd_samplers_common.replace_torchsde_browinan with CPU noise) installed as torchsde's `_randn`.
  * The four samplers with A1111's option `brownian_noise` (DPM++ SDE, DPM++ 2M SDE, DPM++ 2M SDE
    Heun, DPM++ 3M SDE) from k-diffusion as is, on the analytic network and sigma tables of
    tools/refgen/samplers.py, with the noise sampler built the way A1111 1.10's
    KDiffusionSampler.create_noise_sampler builds it (in our words, below).
Torch runs with ATEN_CPU_CAPABILITY=avx2: the randn kernel easel's TorchGenerator reproduces.
"""

import os

os.environ["ATEN_CPU_CAPABILITY"] = "avx2"  # before torch is imported (see the module docstring)

import importlib.util
import json
import math
import sys
import warnings

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import refgen_args  # noqa: E402

SEED = None  # --seed: None for the committed set


def load_samplers_module():
    spec = importlib.util.spec_from_file_location("refgen_samplers", os.path.join(HERE, "samplers.py"))
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


S = load_samplers_module()  # also loads k-diffusion's sampling.py by file path (S.K)
K = S.K
import torchsde  # noqa: E402  (k-diffusion imported it already)
from torchsde._brownian import brownian_interval as BI  # noqa: E402

TORCHSDE_RANDN = BI._randn


def a1111_torchsde_randn(size, dtype, device, seed):
    """A1111 sd_samplers_common.replace_torchsde_browinan with randn_source "CPU": devices.randn_local
    (a fresh CPU generator seeded with `seed`, float32 randn of `size`), moved to the tree's device/dtype."""
    generator = torch.Generator("cpu").manual_seed(int(seed))
    return torch.randn(size, generator=generator).to(device=device, dtype=dtype)


BI._randn = a1111_torchsde_randn


def a1111_noise_sampler(x, sigmas, seeds):
    """KDiffusionSampler.create_noise_sampler (opts.no_dpmpp_sde_batch_determinism off): the tree spans
    the positive range of the whole sigma table A1111 planned (sample_img2img passes `sigmas`, not the
    cut `sigma_sched`), one tree per image seed of this iteration."""
    sigma_min, sigma_max = sigmas[sigmas > 0].min(), sigmas.max()
    return K.BrownianTreeNoiseSampler(x, sigma_min, sigma_max, seed=list(seeds))


# --- numpy SeedSequence -----------------------------------------------------------------------------
def seed_sequence_cases():
    cases = []
    for entropy, spawn_key, pool, n, dtype in [
        (0, (), 4, 4, "uint32"), (1, (), 24, 3, "uint32"), (4294967294, (), 24, 3, "uint32"),
        (4294967296 + 5, (), 24, 3, "uint32"), (2 ** 63 + 12345, (), 8, 5, "uint32"),
        (1, (0, 0), 24, 4, "uint32"), (1, (1, 1), 24, 4, "uint32"), (1234, (5, 3), 24, 4, "uint32"),
        (4294967295, (2 ** 20 + 7, 21), 24, 4, "uint32"), (77, (2 ** 33 + 1, 34), 24, 4, "uint32"),
        (31337, (), 4, 3, "uint64"), (99, (12, 4), 24, 2, "uint64"), (5, (), 4, 7, "uint32"),
    ]:
        ss = np.random.SeedSequence(entropy=entropy, spawn_key=spawn_key, pool_size=pool)
        state = ss.generate_state(n, dtype=np.dtype(dtype))
        cases.append(dict(entropy=str(entropy), spawn_key=[str(k) for k in spawn_key], pool_size=pool,
                          n_words=n, dtype=dtype, state=[str(int(v)) for v in state]))
    return cases


# --- raw noise-sampler queries ------------------------------------------------------------------------
def karras(n, lo=0.0291675, hi=14.614642):
    return K.get_sigmas_karras(n=n, sigma_min=lo, sigma_max=hi, rho=7.0)


def dpmpp_sde_queries(sigmas):
    """The (sigma, sigma_next) pairs sample_dpmpp_sde asks for, computed as it computes them (float32)."""
    sigma_fn = lambda t: t.neg().exp()
    t_fn = lambda sigma: sigma.log().neg()
    out = []
    for i in range(len(sigmas) - 1):
        if sigmas[i + 1] == 0:
            continue
        t, t_next = t_fn(sigmas[i]), t_fn(sigmas[i + 1])
        h = t_next - t
        s = t + h * 0.5
        out.append((sigma_fn(t), sigma_fn(s)))
        out.append((sigma_fn(t), sigma_fn(t_next)))
    return out


def descending_queries(sigmas):
    return [(sigmas[i], sigmas[i + 1]) for i in range(len(sigmas) - 1) if sigmas[i + 1] > 0]


def tree_cases():
    k10 = karras(10)
    k8 = karras(8)
    exp6 = K.get_sigmas_exponential(n=6, sigma_min=0.0291675, sigma_max=14.614642)
    cut = k10[4:]  # an img2img tail (strength 0.6 of 10 steps)
    defs = [
        dict(seeds=[1], shape=[4, 8, 8], table=k10, queries=descending_queries(k10)),
        dict(seeds=[4294967294, 4294967295, 0], shape=[4, 8, 8], table=k8, queries=descending_queries(k8)),
        dict(seeds=[123456789, 123456790], shape=[4, 8, 8], table=exp6, queries=dpmpp_sde_queries(exp6)),
        dict(seeds=[2 ** 32 + 17, 2 ** 40 + 3], shape=[4, 3, 5], table=k8, queries=dpmpp_sde_queries(k8)),
        dict(seeds=[7], shape=[3, 5], table=k8, queries=descending_queries(k8)),  # 15 values: serial randn
        dict(seeds=[7, 8], shape=[1, 7, 9], table=k10, queries=descending_queries(k10)),
        dict(seeds=[31337, 31338, 31339], shape=[4, 8, 8], table=cut, queries=descending_queries(cut),
             note="img2img-cut range: the tree spans only the tail (what a cut-range tree would give)"),
    ]
    # With --seed the same kinds of trees get other seeds: one offset for all, so the large ones stay
    # large (two 32-bit words) and each tree's seeds stay consecutive.
    offset = refgen_args.seeded(0, SEED, "brownian_tree.trees")
    for d in defs:
        d["seeds"] = [s + offset for s in d["seeds"]]
    # repeated, ascending, out-of-order, nested and clamped queries on one tree
    tbl = k8
    mixed = [(tbl[3], tbl[4]), (tbl[0], tbl[1]), (tbl[3], tbl[4]), (tbl[4], tbl[3]), (tbl[1], tbl[6]),
             (torch.tensor(2.5), torch.tensor(0.75)), (tbl[6], tbl[0]), (torch.tensor(20.0), tbl[2]),
             (tbl[6], torch.tensor(0.001)), (torch.tensor(5.0), torch.tensor(5.0 + 2e-6)), (tbl[2], tbl[5])]
    defs.append(dict(seeds=[42 + offset, 43 + offset], shape=[4, 8, 8], table=tbl, queries=mixed,
                     note="repeats, ascending, out of order, spanning, clamped to the range, 2e-6 apart"))
    return defs


def run_tree_case(i, d):
    sigmas = d["table"].to(torch.float32)
    b = len(d["seeds"])
    x = torch.zeros([b] + d["shape"])
    ns = a1111_noise_sampler(x, sigmas, d["seeds"])
    out, queries = {}, []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # out-of-range queries warn (and clamp)
        for q, (s, sn) in enumerate(d["queries"]):
            s, sn = torch.as_tensor(s, dtype=torch.float32), torch.as_tensor(sn, dtype=torch.float32)
            out[f"q.{q}"] = ns(s, sn)
            queries.append([float(s), float(sn)])
    sig_pos = sigmas[sigmas > 0]
    name = f"t{i:02d}_b{b}_" + "x".join(map(str, d["shape"]))
    case = dict(name=name, seeds=[str(s) for s in d["seeds"]], shape=d["shape"],
                sigma_min=float(sig_pos.min()), sigma_max=float(sigmas.max()), queries=queries)
    if "note" in d:
        case["note"] = d["note"]
    return case, {f"{name}.{k}": v for k, v in out.items()}


# --- facts the C++ relies on (asserted here, recorded in cases.json) ---------------------------------
def check_facts():
    facts = {}
    tbl = karras(8).to(torch.float32)
    qs = descending_queries(tbl) + dpmpp_sde_queries(tbl)
    x = torch.zeros([2, 4, 3, 5])

    t0, t1 = float(tbl[tbl > 0].min()), float(tbl.max())  # what BatchedBrownianTree hands torchsde

    def answers(order, **interval_kwargs):
        ns = a1111_noise_sampler(x, tbl, [11, 12])
        if interval_kwargs:  # rebuild each tree's BrownianInterval with other cache / pool settings
            for tree in ns.tree.trees:
                old = tree._interval
                tree._interval = BI.BrownianInterval(t0=t0, t1=t1, size=old._size, dtype=old._dtype,
                                                     device=old._device, entropy=old._entropy, tol=1e-6,
                                                     halfway_tree=True, **{"pool_size": 24, **interval_kwargs})
        return {j: ns(*qs[j]) for j in order}

    forward = answers(range(len(qs)))
    backward = answers(reversed(range(len(qs))))
    no_cache = answers(range(len(qs)), cache_size=0)
    big_cache = answers(range(len(qs)), cache_size=None)
    pool8 = answers(range(len(qs)), pool_size=8)
    same = lambda a, b: all(torch.equal(a[j], b[j]) for j in a)
    assert same(forward, backward), "query order changed a value"
    assert same(forward, no_cache) and same(forward, big_cache), "the LRU cache changed a value"
    assert not same(forward, pool8), "pool_size should change the values (it feeds SeedSequence)"
    facts["query_order_independent"] = True
    facts["lru_cache_size_independent"] = "cache_size 0, 45 (default) and unbounded give identical bits"
    facts["pool_size_changes_values"] = "pool_size 24 (BrownianTree's default) vs 8 differ: it is SeedSequence's pool"
    # A1111's hook vs torchsde's own _randn on CPU float32
    a = TORCHSDE_RANDN((4, 3, 5), torch.float32, torch.device("cpu"), 2 ** 31 + 5)
    b = a1111_torchsde_randn((4, 3, 5), torch.float32, torch.device("cpu"), 2 ** 31 + 5)
    assert torch.equal(a, b)
    facts["a1111_randn_hook_equals_torchsde_randn_on_cpu_float32"] = True
    return facts


# --- whole sampler runs -----------------------------------------------------------------------------------
SHAPE = [4, 8, 8]
SDE_SAMPLERS = ["DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 3M SDE"]


def correctly_rounded_table(label, schedule, wrap, steps):
    """The table of a1111_sigmas with every exp / pow correctly rounded to float32 (easel's way);
    torch's CPU exp / pow (MKL here) differ from that by one ulp for about 1% of values."""
    fname, options = S.K_SAMPLERS[label]
    discard = options.get("discard_next_to_last_sigma", False)
    n = steps + (1 if discard else 0)
    name = S.LABEL_TO_SCHED[schedule] or options.get("scheduler")
    lo, hi = wrap.sigmas[0].item(), wrap.sigmas[-1].item()
    if name == "karras":
        ramp = torch.linspace(0, 1, n).numpy()
        base = np.float32(hi ** (1 / 7)) + ramp * np.float32(lo ** (1 / 7) - hi ** (1 / 7))
        table = [np.float32(float(b) ** 7.0) for b in base]
    else:
        assert name == "exponential", name
        table = [np.float32(math.exp(float(v))) for v in torch.linspace(math.log(hi), math.log(lo), n)]
    table.append(np.float32(0))
    if discard:
        table = table[:-2] + table[-1:]
    return torch.tensor(np.array(table, dtype=np.float32))


def dpmpp_sde_levels_correctly_rounded(sigmas):
    """Whether torch's float32 log/exp gave the correctly rounded value for every level
    sample_dpmpp_sde derives (t_fn / sigma_fn chains); easel computes them correctly rounded."""
    cr_log = lambda v: np.float32(-math.log(float(v)))
    cr_exp = lambda v: np.float32(math.exp(-float(v)))
    for i in range(len(sigmas) - 1):
        if sigmas[i + 1] == 0:
            continue
        t, tn = sigmas[i].log().neg(), sigmas[i + 1].log().neg()
        if float(t) != cr_log(sigmas[i]) or float(tn) != cr_log(sigmas[i + 1]):
            return False
        s = t + (tn - t) * 0.5
        for v in (t, s, tn):
            if float(v.neg().exp()) != cr_exp(v):
                return False
    return True


def run_sampler_case(c):
    model = S.AnalyticModel(c["cfg_scale"], 0.0)
    seeds = [c["seed"] + i for i in range(c["batch"])]
    rng = S.ImageRNG(SHAPE, seeds)
    wrap = (S.KX.CompVisVDenoiser if c["prediction"] == "v" else S.KX.CompVisDenoiser)(model, quantize=False)
    steps, strength = c["steps"], c.get("strength")
    sigmas = S.a1111_sigmas(c["sampler"], c["schedule"], wrap, steps)
    out = {}
    noise = rng.next()
    if strength is None:
        sched = sigmas
        x = noise * sigmas[0]
        x_for_shape = x
    else:
        g = torch.Generator().manual_seed(c["seed"] + 1000)
        init = torch.randn([c["batch"]] + SHAPE, generator=g) * 0.8
        out["init"] = init
        _, t_enc = S.img2img_steps(steps, strength)
        sched = sigmas[steps - t_enc - 1:]
        x = init + noise * sched[0]
        x_for_shape = init
    out["sigmas"] = sched.to(torch.float32)
    ns = a1111_noise_sampler(x_for_shape, sigmas, seeds)
    queries = []

    def logged(s, sn):
        queries.append([float(s), float(sn)])
        return ns(s, sn)
    fname, options = S.K_SAMPLERS[c["sampler"]]
    assert options.get("brownian_noise")
    kw = dict(eta=1.0, s_noise=1.0, noise_sampler=logged)
    if options.get("solver_type"):
        kw["solver_type"] = options["solver_type"]
    xs = {}

    def cb(d):
        xs[d["i"]] = d["x"].clone()
    x = getattr(K, fname)(wrap, x, sched, extra_args={"cond": None}, callback=cb, disable=True, **kw)
    n = len(sched) - 1
    traj = [xs[i] for i in range(1, n)] + [x]
    for i, t in enumerate(traj):
        out[f"x.{i}"] = t
    c["recorded_steps"] = len(traj)
    c["queries"] = queries
    c["tree_sigma_min"] = float(sigmas[sigmas > 0].min())
    c["tree_sigma_max"] = float(sigmas.max())
    # whether torch's float32 math agreed with easel's correctly rounded math for every level the
    # noise sampler was asked for (the table, and for DPM++ SDE its log/exp levels)
    exact = torch.equal(correctly_rounded_table(c["sampler"], c["schedule"], wrap, steps), sigmas.to(torch.float32))
    if c["sampler"] == "DPM++ SDE":
        exact = exact and dpmpp_sde_levels_correctly_rounded(sched.to(torch.float32))
    c["torch_math_correctly_rounded"] = exact
    return out


def sampler_cases():
    cases = []
    for label in SDE_SAMPLERS:
        for sched in ["Karras", "Exponential"]:
            cases.append(dict(sampler=label, schedule=sched, steps=6, prediction="eps"))
    cases += [
        dict(sampler="DPM++ SDE", schedule="Karras", steps=8, prediction="eps", strength=0.6),
        dict(sampler="DPM++ 2M SDE", schedule="Exponential", steps=8, prediction="v", strength=0.5),
        dict(sampler="DPM++ 3M SDE", schedule="Karras", steps=7, prediction="eps", strength=0.75),
        dict(sampler="DPM++ 2M SDE Heun", schedule="Karras", steps=10, prediction="v"),
    ]
    seeds = [1, 4294967293, 1000, 77, 31337, 2024, 5, 123456, 99, 4000000000, 8, 640]
    for i, c in enumerate(cases):
        c["cfg_scale"] = 3.0
        c["batch"] = 2
        c["seed"] = refgen_args.seeded(seeds[i], SEED, f"brownian_tree.case{i}")
        parts = [c["sampler"].replace(" ", "_").replace("+", "p"), c["schedule"], str(c["steps"]), c["prediction"]]
        if "strength" in c:
            parts.append(f"strength{c['strength']}")
        c["name"] = f"s{i:02d}_" + "_".join(parts)
    return cases


def main():
    global SEED
    from safetensors.torch import save_file
    import k_diffusion  # noqa: F401  (the stand-in package samplers.py set up)
    import safetensors
    args = refgen_args.parse("brownian_tree", __doc__)
    OUT, SEED = args.out, args.seed
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="Should have", category=UserWarning)  # torchsde clamping
    facts = check_facts()
    tensors = {}
    tcases = []
    for i, d in enumerate(tree_cases()):
        case, t = run_tree_case(i, d)
        tcases.append(case)
        tensors.update(t)
    scases = sampler_cases()
    for c in scases:
        for k, t in run_sampler_case(c).items():
            tensors[f"{c['name']}.{k}"] = t
    tensors = {k: v.to(torch.float32).contiguous() for k, v in tensors.items()}
    versions = {"torch": torch.__version__, "torchsde": torchsde.__version__, "k-diffusion": "0.1.1.post1",
                "numpy": np.__version__, "safetensors": safetensors.__version__,
                "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
                "a1111": "1.10 (create_noise_sampler and the torchsde randn hook re-implemented)"}
    if SEED is not None:
        versions["seed"] = str(SEED)
    info = {
        "versions": versions,
        "tree": {"library": "torchsde.BrownianTree via k_diffusion.sampling.BrownianTreeNoiseSampler",
                 "tol": 1e-6, "pool_size": 24, "halfway_tree": True, "levy_area_approximation": "none",
                 "dtype": "float32", "transform": "identity"},
        "facts": facts,
        "schedule": {"type": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "num_train_timesteps": 1000},
        "latent_shape_per_image": SHAPE,
        "model": {"formula": "as tests/data/samplers: out = a(t) x + b(t) tanh(x), cfg on the output",
                  "uncond": list(S.COEF_UNCOND), "cond": list(S.COEF_COND)},
        "noise": "initial noise: A1111 ImageRNG (seed + i per image); SDE noise: a BrownianTreeNoiseSampler over "
                 "the whole planned table's positive range, one tree per image seed",
        "seed_sequences": seed_sequence_cases(),
        "tree_cases": tcases,
        "sampler_cases": scases,
    }
    os.makedirs(OUT, exist_ok=True)
    # one metadata key: safetensors writes its metadata map in hash order, which varies between runs
    save_file(tensors, os.path.join(OUT, "cases.safetensors"),
              metadata={"versions": json.dumps(versions, sort_keys=True)})
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(len(info["seed_sequences"]), "seed sequences,", len(tcases), "tree cases,", len(scases), "sampler cases,",
          os.path.getsize(os.path.join(OUT, "cases.safetensors")), "bytes")
    print("sampler runs whose levels torch computed correctly rounded:",
          sum(c["torch_math_correctly_rounded"] for c in scases), "of", len(scases))


if __name__ == "__main__":
    main()
