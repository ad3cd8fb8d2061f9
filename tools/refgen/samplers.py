#!/usr/bin/env python3
"""Writes tests/data/samplers/: A1111 samplers and schedules on the SD discrete DDPM schedule.

Run from the source root:  /work/venv-refgen/bin/python tools/refgen/samplers.py [--out DIR] [--seed N]
(--seed N: other case seeds and another latent shape per image; see refgen_args.py)

What runs what (see tests/data/samplers/README.md for the full story):
  * k-diffusion samplers (Euler, Euler a, Heun, DPM2, DPM2 a, LMS, DPM++ 2M, DPM++ 2M SDE (+Heun),
    DPM++ SDE, DPM++ 2S a, DPM++ 3M SDE) are k-diffusion 0.1.1.post1's own functions, driven by
    k-diffusion's own CompVisDenoiser / CompVisVDenoiser, with sigma tables from k-diffusion's own
    get_sigmas_* and DiscreteSchedule, picked the way A1111 1.10 picks them.
  * A1111-only code (the scheduler table, sgm_uniform, discard-penultimate, img2img step rule, the
    timestep samplers DDIM / PLMS / UniPC, LCM) is re-implemented here in our own words, following
    A1111 1.10's algorithm step by step, and cross-checked against diffusers' DDIMScheduler,
    PNDMScheduler(skip_prk_steps) and UniPCMultistepScheduler where the two coincide (asserted
    below, not stored).
  * Noise: A1111's ImageRNG (one CPU torch.Generator per image seeded with the image's seed; the
    first draw is the initial latent, every later draw is one randn per image, stacked), installed
    as k-diffusion's `torch.randn_like` exactly as A1111's TorchHijack does. The SDE samplers get a
    noise_sampler that draws from the same stream (A1111 uses torchsde's BrownianTree there).
"""

import importlib.util
import json
import math
import os
import sys
import types

import diffusers  # before k_diffusion's stand-in package below (diffusers probes for it)
import numpy as np
import torch

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import refgen_args  # noqa: E402

SEED = None  # --seed: None for the committed set


# --- k-diffusion, loaded by file path (its package __init__ imports a training stack) ---
def load_kdiffusion():
    import site
    base = None
    for p in site.getsitepackages():
        if os.path.isdir(os.path.join(p, "k_diffusion")):
            base = os.path.join(p, "k_diffusion")
    assert base, "k_diffusion not installed"
    sys.modules.setdefault("torchdiffeq", types.SimpleNamespace(odeint=None))
    pkg = types.ModuleType("k_diffusion")
    pkg.__path__ = [base]
    sys.modules["k_diffusion"] = pkg
    mods = {}
    for name in ["utils", "sampling", "external"]:
        spec = importlib.util.spec_from_file_location("k_diffusion." + name, os.path.join(base, name + ".py"))
        m = importlib.util.module_from_spec(spec)
        sys.modules["k_diffusion." + name] = m
        setattr(pkg, name, m)
        spec.loader.exec_module(m)
        mods[name] = m
    return mods["sampling"], mods["external"]


K, KX = load_kdiffusion()
REAL_TORCH = torch


# --- the model: SD's discrete schedule and an analytic network -------------------------------------
def ldm_alphas_cumprod(n=1000, beta_start=0.00085, beta_end=0.012):
    # ldm.models.diffusion.ddpm.register_schedule with make_beta_schedule("linear", ...): float64
    betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, n, dtype=torch.float64) ** 2
    alphas_cumprod = np.cumprod(1.0 - betas.numpy(), axis=0)
    return alphas_cumprod  # float64; the model registers float32 copies


AC64 = ldm_alphas_cumprod()
COEF_UNCOND = (0.6, 0.2, 0.3, 0.0)
COEF_COND = (0.7, -0.15, 0.25, 0.5)


def analytic(x_in, t, coef):
    """out = a(t) * x_in + b(t) * tanh(x_in); a, b computed in double from the float32 t."""
    a0, a1, b0, b1 = coef
    t = float(t)
    a = a0 + a1 * math.cos(t / 400.0)
    b = b0 * math.sin(t / 250.0 + b1)
    return x_in * a + torch.tanh(x_in) * b


def rescale_noise_cfg(noise_cfg, noise_pred_text, guidance_rescale):
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import rescale_noise_cfg as r
    return r(noise_cfg, noise_pred_text, guidance_rescale=guidance_rescale)


class AnalyticModel:
    """Stands in for ldm's LatentDiffusion: alphas_cumprod buffers and apply_model(x, t, cond).
    The network output is classifier-free guided (uncond + scale * (cond - uncond)), then
    optionally rescaled with diffusers' rescale_noise_cfg (phi)."""

    def __init__(self, cfg_scale, phi):
        self.alphas_cumprod = torch.tensor(AC64, dtype=torch.float32)
        self.sqrt_alphas_cumprod = torch.tensor(np.sqrt(AC64), dtype=torch.float32)
        self.sqrt_one_minus_alphas_cumprod = torch.tensor(np.sqrt(1.0 - AC64), dtype=torch.float32)
        self.cfg_scale = cfg_scale
        self.phi = phi
        self.device = "cpu"

    def apply_model(self, x, t, cond=None):
        t = torch.as_tensor(t).reshape(-1)
        assert torch.all(t == t[0])
        t0 = t[0].item()
        u = analytic(x, t0, COEF_UNCOND)
        c = analytic(x, t0, COEF_COND)
        out = u + self.cfg_scale * (c - u)
        if self.phi > 0:
            out = rescale_noise_cfg(out, c, self.phi)
        return out


# --- A1111 ImageRNG with CPU generators -----------------------------------------------------------
class ImageRNG:
    def __init__(self, shape, seeds, ensd=0):
        self.shape, self.seeds, self.ensd = tuple(shape), seeds, ensd
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.is_first = True
        self.draws = 0

    def next(self):
        self.draws += 1
        xs = [REAL_TORCH.randn(self.shape, generator=g) for g in self.generators]
        if self.is_first:
            self.is_first = False
            if self.ensd:
                self.generators = [torch.Generator().manual_seed(int(s) + self.ensd) for s in self.seeds]
        return REAL_TORCH.stack(xs)


class TorchHijack:
    """A1111's sd_samplers_common.TorchHijack: k-diffusion's torch.randn_like draws from p.rng."""

    def __init__(self, rng):
        self.rng = rng

    def __getattr__(self, item):
        if item == "randn_like":
            return lambda x: self.rng.next()
        return getattr(REAL_TORCH, item)


# --- A1111 schedules (sd_schedulers.py) and sampler table (sd_samplers_kdiffusion.py) -------------
def sgm_uniform(n, sigma_min, sigma_max, inner_model):
    start = inner_model.sigma_to_t(torch.tensor(sigma_max))
    end = inner_model.sigma_to_t(torch.tensor(sigma_min))
    sigs = [inner_model.t_to_sigma(ts) for ts in torch.linspace(start, end, n + 1)[:-1]]
    sigs += [0.0]
    return torch.FloatTensor(sigs)


SCHEDULES = {  # A1111 name -> (label, function(n, sigma_min, sigma_max, inner_model))
    "uniform": ("Uniform", lambda n, lo, hi, m: m.get_sigmas(n)),
    "karras": ("Karras", lambda n, lo, hi, m: K.get_sigmas_karras(n=n, sigma_min=lo, sigma_max=hi, rho=7.0)),
    "exponential": ("Exponential", lambda n, lo, hi, m: K.get_sigmas_exponential(n=n, sigma_min=lo, sigma_max=hi)),
    "sgm_uniform": ("SGM Uniform", sgm_uniform),
}
LABEL_TO_SCHED = {"Automatic": None, **{v[0]: k for k, v in SCHEDULES.items()}}

# label -> (function, options) as A1111 1.10's samplers_k_diffusion (+ LCM)
K_SAMPLERS = {
    "DPM++ 2M": ("sample_dpmpp_2m", {"scheduler": "karras"}),
    "DPM++ SDE": ("sample_dpmpp_sde", {"scheduler": "karras", "brownian_noise": True}),
    "DPM++ 2M SDE": ("sample_dpmpp_2m_sde", {"scheduler": "exponential", "brownian_noise": True}),
    "DPM++ 2M SDE Heun": ("sample_dpmpp_2m_sde", {"scheduler": "exponential", "brownian_noise": True, "solver_type": "heun"}),
    "DPM++ 2S a": ("sample_dpmpp_2s_ancestral", {"scheduler": "karras"}),
    "DPM++ 3M SDE": ("sample_dpmpp_3m_sde", {"scheduler": "exponential", "discard_next_to_last_sigma": True, "brownian_noise": True}),
    "Euler a": ("sample_euler_ancestral", {}),
    "Euler": ("sample_euler", {}),
    "LMS": ("sample_lms", {}),
    "Heun": ("sample_heun", {}),
    "DPM2": ("sample_dpm_2", {"scheduler": "karras", "discard_next_to_last_sigma": True}),
    "DPM2 a": ("sample_dpm_2_ancestral", {"scheduler": "karras", "discard_next_to_last_sigma": True}),
    "LCM": ("lcm", {}),
}
TIMESTEP_SAMPLERS = ["DDIM", "PLMS", "UniPC"]


def a1111_sigmas(label, schedule_label, model_wrap, steps):
    """KDiffusionSampler.get_sigmas (opts at their defaults)."""
    fn, options = K_SAMPLERS[label]
    discard = options.get("discard_next_to_last_sigma", False)
    steps += 1 if discard else 0
    name = LABEL_TO_SCHED[schedule_label]
    if name is None:
        name = options.get("scheduler", None)
    if name is None:
        sigmas = model_wrap.get_sigmas(steps)
    else:
        lo, hi = model_wrap.sigmas[0].item(), model_wrap.sigmas[-1].item()
        sigmas = SCHEDULES[name][1](steps, lo, hi, model_wrap)
    if discard:
        sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
    return sigmas.cpu()


def img2img_steps(steps, strength):
    """sd_samplers_common.setup_img2img_steps with img2img_fix_steps off."""
    return steps, int(min(strength, 0.999) * steps)


# --- LCM (sd_samplers_lcm.py), in our words ---------------------------------------------------------
class LCMDenoiser(KX.DiscreteEpsDDPMDenoiser):
    def __init__(self, model):
        timesteps, original = 1000, 50
        self.skip_steps = timesteps // original
        valid = torch.zeros(original, dtype=torch.float32)
        for x in range(original):
            valid[original - 1 - x] = model.alphas_cumprod[timesteps - 1 - x * self.skip_steps]
        super().__init__(model, valid, quantize=None)

    def get_sigmas(self, n=None):
        start = self.sigma_to_t(self.sigma_max)
        end = self.sigma_to_t(self.sigma_min)
        t = torch.linspace(start, end, n)
        return K.append_zero(self.t_to_sigma(t))

    def sigma_to_t(self, sigma, quantize=None):
        dists = sigma.log() - self.log_sigmas[:, None]
        return dists.abs().argmin(dim=0).view(sigma.shape) * self.skip_steps + (self.skip_steps - 1)

    def t_to_sigma(self, timestep):
        t = torch.clamp(((timestep - (self.skip_steps - 1)) / self.skip_steps).float(), min=0, max=(len(self.sigmas) - 1))
        return super().t_to_sigma(t)

    def get_eps(self, *args, **kwargs):
        return self.inner_model.apply_model(*args, **kwargs)

    def forward(self, input, sigma, **kwargs):
        c_out, c_in = [K.utils.append_dims(x, input.ndim) for x in self.get_scalings(sigma)]
        eps = self.get_eps(input * c_in, self.sigma_to_t(sigma), **kwargs)
        output = input + eps * c_out
        sigma_data = 0.5
        scaled_t = K.utils.append_dims(self.sigma_to_t(sigma), output.ndim) * 10.0
        c_skip = sigma_data ** 2 / (scaled_t ** 2 + sigma_data ** 2)
        c_out2 = scaled_t / (scaled_t ** 2 + sigma_data ** 2) ** 0.5
        return c_out2 * output + c_skip * input


K.utils = sys.modules["k_diffusion.utils"]


def sample_lcm(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None):
    noise_sampler = K.default_noise_sampler(x) if noise_sampler is None else noise_sampler
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "denoised": denoised})
        x = denoised
        if sigmas[i + 1] > 0:
            x = x + sigmas[i + 1] * noise_sampler(sigmas[i], sigmas[i + 1])
    return x


# --- timestep samplers (sd_samplers_timesteps.py / _impl.py), in our words --------------------------
def a1111_timesteps(steps):
    return torch.clip(torch.asarray(list(range(0, 1000, 1000 // steps))) + 1, 0, 999)


class TimestepModel:
    """CompVisTimestepsDenoiser / CompVisTimestepsVDenoiser: eps from the network at timestep t."""

    def __init__(self, model, v):
        self.model, self.v = model, v

    def __call__(self, x, t):
        out = self.model.apply_model(x, t)
        if not self.v:
            return out
        ti = torch.as_tensor(t).reshape(-1).to(torch.int)
        return (self.model.sqrt_alphas_cumprod[ti, None, None, None] * out
                + self.model.sqrt_one_minus_alphas_cumprod[ti, None, None, None] * x)


def ddim(eps_fn, ac, x, timesteps, rng, eta, record):
    alphas = ac[timesteps]
    alphas_prev = ac[torch.nn.functional.pad(timesteps[:-1], pad=(1, 0))].to(torch.float64)
    sqrt_one_minus_alphas = torch.sqrt(1 - alphas)
    sigmas = eta * np.sqrt((1 - alphas_prev.cpu().numpy()) / (1 - alphas.cpu()) * (1 - alphas.cpu() / alphas_prev.cpu().numpy()))
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(timesteps) - 1):
        index = len(timesteps) - 1 - i
        e_t = eps_fn(x, timesteps[index].item() * s_in)
        a_t = alphas[index].item() * s_in
        a_prev = alphas_prev[index].item() * s_in
        sigma_t = sigmas[index].item() * s_in
        sqrt_one_minus_at = sqrt_one_minus_alphas[index].item() * s_in
        pred_x0 = (x - sqrt_one_minus_at[:, None, None, None] * e_t) / a_t.sqrt()[:, None, None, None]
        dir_xt = (1. - a_prev - sigma_t ** 2).sqrt()[:, None, None, None] * e_t
        noise = sigma_t[:, None, None, None] * rng.next()
        x = a_prev.sqrt()[:, None, None, None] * pred_x0 + dir_xt + noise
        record(x)
    return x


def plms(eps_fn, ac, x, timesteps, record):
    alphas = ac[timesteps]
    alphas_prev = ac[torch.nn.functional.pad(timesteps[:-1], pad=(1, 0))].to(torch.float64)
    sqrt_one_minus_alphas = torch.sqrt(1 - alphas)
    s_in = x.new_ones([x.shape[0]])
    old_eps = []

    def x_prev_of(x, e_t, index):
        a_t = (alphas[index].item() * s_in)[:, None, None, None]
        a_prev = (alphas_prev[index].item() * s_in)[:, None, None, None]
        sqrt_one_minus_at = (sqrt_one_minus_alphas[index].item() * s_in)[:, None, None, None]
        pred_x0 = (x - sqrt_one_minus_at * e_t) / a_t.sqrt()
        return a_prev.sqrt() * pred_x0 + (1. - a_prev).sqrt() * e_t

    for i in range(len(timesteps) - 1):
        index = len(timesteps) - 1 - i
        ts = timesteps[index].item() * s_in
        t_next = timesteps[max(index - 1, 0)].item() * s_in
        e_t = eps_fn(x, ts)
        if len(old_eps) == 0:
            x_prev = x_prev_of(x, e_t, index)
            e_t_next = eps_fn(x_prev, t_next)
            e_prime = (e_t + e_t_next) / 2
        elif len(old_eps) == 1:
            e_prime = (3 * e_t - old_eps[-1]) / 2
        elif len(old_eps) == 2:
            e_prime = (23 * e_t - 16 * old_eps[-1] + 5 * old_eps[-2]) / 12
        else:
            e_prime = (55 * e_t - 59 * old_eps[-1] + 37 * old_eps[-2] - 9 * old_eps[-3]) / 24
        x = x_prev_of(x, e_prime, index)
        old_eps.append(e_t)
        if len(old_eps) >= 4:
            old_eps.pop(0)
        record(x)
    return x


class VPSchedule:
    """UniPC's NoiseScheduleVP('discrete'): log(alpha_t) piecewise linear in t on t_n = (n+1)/N."""

    def __init__(self, ac):
        self.log_alpha = 0.5 * torch.log(ac)
        self.N = len(ac)
        self.t_array = torch.linspace(0., 1., self.N + 1)[1:]

    def log_alpha_at(self, t):
        t = t.reshape(-1)
        xp, yp = self.t_array, self.log_alpha
        # interpolate_fn: the segment containing t, the outer segments extended beyond the ends
        idx = torch.searchsorted(xp, t.contiguous()).clamp(1, self.N - 1) - 1
        x0, x1, y0, y1 = xp[idx], xp[idx + 1], yp[idx], yp[idx + 1]
        return y0 + (t - x0) * (y1 - y0) / (x1 - x0)

    def alpha(self, t):
        return torch.exp(self.log_alpha_at(t))

    def std(self, t):
        return torch.sqrt(1. - torch.exp(2. * self.log_alpha_at(t)))

    def lam(self, t):
        la = self.log_alpha_at(t)
        return la - 0.5 * torch.log(1. - torch.exp(2. * la))


def unipc(eps_fn, ac, x, steps, t_start, record, variant="bh1", order=3, lower_order_final=True):
    """UniPC multistep, data prediction (predict_x0), time_uniform skip: A1111's defaults."""
    ns = VPSchedule(ac)
    t_0 = 1. / ns.N
    t_T = 1. if t_start is None else t_start
    assert steps >= order
    timesteps = torch.linspace(t_T, t_0, steps + 1)

    def model_x0(x, t):
        t_input = (t - 1. / ns.N) * 1000.
        noise = eps_fn(x, t_input)
        return (x - ns.std(t)[:, None, None, None] * noise) / ns.alpha(t)[:, None, None, None]

    def update(x, model_prev, t_prev, t, order, use_corrector):
        lam_p0, lam_t = ns.lam(t_prev[-1]), ns.lam(t)
        m0 = model_prev[-1]
        sigma_p0, sigma_t = ns.std(t_prev[-1]), ns.std(t)
        alpha_t = torch.exp(ns.log_alpha_at(t))
        h = lam_t - lam_p0
        rks, D1s = [], []
        for i in range(1, order):
            rk = ((ns.lam(t_prev[-(i + 1)]) - lam_p0) / h)[0]
            rks.append(rk)
            D1s.append((model_prev[-(i + 1)] - m0) / rk)
        rks.append(1.)
        rks = torch.tensor(rks)
        hh = -h[0]
        h_phi_1 = torch.expm1(hh)
        h_phi_k = h_phi_1 / hh - 1
        B_h = hh if variant == "bh1" else torch.expm1(hh)
        R, b, fact = [], [], 1
        for i in range(1, order + 1):
            R.append(torch.pow(rks, i - 1))
            b.append(h_phi_k * fact / B_h)
            fact *= (i + 1)
            h_phi_k = h_phi_k / hh - 1 / fact
        R, b = torch.stack(R), torch.tensor(b)
        if D1s:
            D1s = torch.stack(D1s, dim=1)
            rhos_p = torch.tensor([0.5]) if order == 2 else torch.linalg.solve(R[:-1, :-1], b[:-1])
        else:
            D1s = None
        if use_corrector:
            rhos_c = torch.tensor([0.5]) if order == 1 else torch.linalg.solve(R, b)
        x_t_ = (sigma_t / sigma_p0)[:, None, None, None] * x - (alpha_t * h_phi_1)[:, None, None, None] * m0
        pred_res = torch.einsum("k,bkchw->bchw", rhos_p, D1s) if D1s is not None else 0
        x_t = x_t_ - (alpha_t * B_h)[:, None, None, None] * pred_res
        model_t = None
        if use_corrector:
            model_t = model_x0(x_t, t)
            corr_res = torch.einsum("k,bkchw->bchw", rhos_c[:-1], D1s) if D1s is not None else 0
            x_t = x_t_ - (alpha_t * B_h)[:, None, None, None] * (corr_res + rhos_c[-1] * (model_t - m0))
        return x_t, model_t

    vec_t = timesteps[0].expand(x.shape[0])
    model_prev, t_prev = [model_x0(x, vec_t)], [vec_t]
    for init_order in range(1, order):
        vec_t = timesteps[init_order].expand(x.shape[0])
        x, mx = update(x, model_prev, t_prev, vec_t, init_order, True)
        if mx is None:
            mx = model_x0(x, vec_t)
        record(x)
        model_prev.append(mx)
        t_prev.append(vec_t)
    for step in range(order, steps + 1):
        vec_t = timesteps[step].expand(x.shape[0])
        step_order = min(order, steps + 1 - step) if lower_order_final else order
        x, mx = update(x, model_prev, t_prev, vec_t, step_order, step != steps)
        record(x)
        for i in range(order - 1):
            t_prev[i] = t_prev[i + 1]
            model_prev[i] = model_prev[i + 1]
        t_prev[-1] = vec_t
        if step < steps:
            if mx is None:
                mx = model_x0(x, vec_t)
            model_prev[-1] = mx
    return x


# --- one case -------------------------------------------------------------------------------------
SHAPE = (4, 3, 5)  # per image [C, H, W]; 60 values: torch's 16-wide randn path with a tail


def run_case(c):
    model = AnalyticModel(c["cfg_scale"], c["phi"])
    v = c["prediction"] == "v"
    seeds = [c["seed"] + i for i in range(c["batch"])]
    rng = ImageRNG(SHAPE, seeds, c.get("ensd", 0))
    steps, strength = c["steps"], c.get("strength")
    traj = []
    out = {}
    if strength is not None:
        g = torch.Generator().manual_seed(c["seed"] + 1000)
        init = torch.randn((c["batch"],) + SHAPE, generator=g) * 0.8
        out["init"] = init
    label = c["sampler"]
    if label in TIMESTEP_SAMPLERS:
        eps_fn = TimestepModel(model, v)
        ac = model.alphas_cumprod
        timesteps = a1111_timesteps(steps)
        noise = rng.next()
        if strength is None:
            x, sched, t_start = noise, timesteps, None
        else:
            _, t_enc = img2img_steps(steps, strength)
            sched = timesteps[:t_enc]
            a = ac[timesteps[t_enc]]
            x = init * torch.sqrt(a) + noise * torch.sqrt(1 - a)
            t_start = sched[-1] / 1000 + 1 / 1000
        out["timesteps"] = sched.to(torch.float32)
        rec = traj.append
        if label == "DDIM":
            x = ddim(eps_fn, ac, x, sched, rng, c.get("eta", 0.0), rec)
        elif label == "PLMS":
            x = plms(eps_fn, ac, x, sched, rec)
        else:
            x = unipc(eps_fn, ac, x, len(sched), t_start, rec)
    else:
        fname, options = K_SAMPLERS[label]
        if label == "LCM":
            wrap = LCMDenoiser(model)
            func = sample_lcm
        else:
            wrap = (KX.CompVisVDenoiser if v else KX.CompVisDenoiser)(model, quantize=False)
            func = getattr(K, fname)
        sigmas = a1111_sigmas(label, c["schedule"], wrap, steps)
        noise = rng.next()
        if strength is None:
            sched = sigmas
            x = noise * sigmas[0]
        else:
            _, t_enc = img2img_steps(steps, strength)
            sched = sigmas[steps - t_enc - 1:]
            x = init + noise * sched[0]
        out["sigmas"] = sched.to(torch.float32)
        kw = {}
        import inspect
        params = inspect.signature(func).parameters
        if "eta" in params:
            kw["eta"] = c.get("eta", 1.0)
        if "s_noise" in params and "s_noise" in c:
            kw["s_noise"] = c["s_noise"]
        if options.get("brownian_noise"):
            kw["noise_sampler"] = lambda s, sn: rng.next()
        if options.get("solver_type"):
            kw["solver_type"] = options["solver_type"]
        K.torch = TorchHijack(rng)
        n = len(sched) - 1
        xs = {}

        def cb(d):
            xs[d["i"]] = d["x"].clone()
        x = func(wrap, x, sched, extra_args={} if label == "LCM" else {"cond": None}, callback=cb, disable=True, **kw)
        K.torch = REAL_TORCH
        # x after step i is the callback's x at step i + 1, and the output after the last step
        traj = [xs[i] for i in range(1, n)] + [x]
    assert traj[-1] is x  # the last x.<i> is the output
    for i, t in enumerate(traj):
        out[f"x.{i}"] = t
    c["noise_draws"] = rng.draws
    c["recorded_steps"] = len(traj)
    return out


def build_cases():
    cases = []
    k_labels = [l for l in K_SAMPLERS if l != "LCM"]
    combos = [("Automatic", 3), ("Automatic", 6), ("Karras", 6), ("Exponential", 3), ("SGM Uniform", 6)]
    for label in k_labels:
        for pred in ["eps", "v"]:
            for sched, steps in combos:
                cases.append(dict(sampler=label, schedule=sched, steps=steps, prediction=pred))
    for sched, steps in combos:
        cases.append(dict(sampler="LCM", schedule=sched, steps=steps, prediction="eps"))
    for label in TIMESTEP_SAMPLERS:
        for pred in ["eps", "v"]:
            for steps in [3, 6]:
                cases.append(dict(sampler=label, schedule="Automatic", steps=steps, prediction=pred))
    # options and img2img
    cases += [
        dict(sampler="Euler a", schedule="Automatic", steps=6, prediction="eps", eta=0.5, s_noise=0.9),
        dict(sampler="Euler a", schedule="Karras", steps=5, prediction="eps", ensd=31337),
        dict(sampler="DPM++ 2M SDE", schedule="Automatic", steps=6, prediction="v", eta=0.7, s_noise=1.1),
        dict(sampler="DPM++ 2S a", schedule="Automatic", steps=4, prediction="eps", eta=0.6),
        dict(sampler="DDIM", schedule="Automatic", steps=6, prediction="eps", eta=0.5),
        dict(sampler="DDIM", schedule="Automatic", steps=5, prediction="v", eta=1.0),
        dict(sampler="Euler", schedule="Automatic", steps=6, prediction="eps", strength=0.5),
        dict(sampler="Euler a", schedule="Automatic", steps=6, prediction="eps", strength=0.6),
        dict(sampler="DPM++ 2M", schedule="Karras", steps=8, prediction="v", strength=0.5),
        dict(sampler="DPM2", schedule="Automatic", steps=6, prediction="eps", strength=0.7),
        dict(sampler="LCM", schedule="Automatic", steps=6, prediction="eps", strength=0.6),
        dict(sampler="DDIM", schedule="Automatic", steps=8, prediction="eps", strength=0.5, eta=0.4),
        dict(sampler="PLMS", schedule="Automatic", steps=8, prediction="v", strength=0.6),
        dict(sampler="UniPC", schedule="Automatic", steps=6, prediction="eps", strength=0.75),
        dict(sampler="UniPC", schedule="Automatic", steps=20, prediction="v"),
        dict(sampler="Euler", schedule="Karras", steps=6, prediction="eps", cfg_scale=1.0),
    ]
    for i, c in enumerate(cases):
        c.setdefault("cfg_scale", 3.0)
        c.setdefault("phi", 0.7 if i % 5 == 2 else 0.0)
        c.setdefault("batch", 2)
        c["seed"] = refgen_args.seeded(1000 + 17 * i, SEED, f"samplers.case{i}")
        parts = [c["sampler"].replace(" ", "_").replace("+", "p"), c["schedule"].replace(" ", "_"),
                 str(c["steps"]), c["prediction"]]
        for k in ["eta", "s_noise", "strength", "ensd"]:
            if k in c:
                parts.append(f"{k}{c[k]}")
        if c["cfg_scale"] != 3.0:
            parts.append(f"cfg{c['cfg_scale']}")
        c["name"] = f"c{i:03d}_" + "_".join(parts)
    return cases


# --- cross-checks against diffusers (asserted, not stored) ----------------------------------------
def cross_check_diffusers():
    from diffusers import DDIMScheduler, PNDMScheduler, UniPCMultistepScheduler
    common = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    model = AnalyticModel(3.0, 0.0)
    ac = model.alphas_cumprod
    eps_fn = TimestepModel(model, False)
    g = torch.Generator().manual_seed(7)
    x0 = torch.randn((2,) + SHAPE, generator=g)
    worst = {}

    def rel(a, b):
        return ((a - b).abs().max() / b.abs().max()).item()

    # DDIM: with 1000 % steps == 0 A1111's timesteps are diffusers' "leading" + steps_offset=1 ones,
    # and A1111 runs the first steps - 1 of diffusers' steps.
    for eta in [0.0, 0.5]:
        steps = 5
        noises = [torch.randn((2,) + SHAPE, generator=g) for _ in range(steps)]
        it = iter(noises)
        rng = types.SimpleNamespace(next=lambda: next(it))
        ours = []
        ddim(eps_fn, ac, x0.clone(), a1111_timesteps(steps), rng, eta, ours.append)
        s = DDIMScheduler(**common, clip_sample=False, set_alpha_to_one=False, steps_offset=1)
        s.set_timesteps(steps)
        x = x0.clone()
        for i, t in enumerate(s.timesteps[:steps - 1]):
            e = eps_fn(x, t.float().expand(2))
            x = s.step(e, t, x, eta=eta, variance_noise=noises[i]).prev_sample
            worst[f"ddim eta={eta} step {i}"] = rel(ours[i], x)
    # PLMS: diffusers PNDM with skip_prk_steps repeats the second timestep for the pseudo-improved
    # Euler first step; its call j + 1 ends A1111's step j.
    steps = 5
    ours = []
    plms(eps_fn, ac, x0.clone(), a1111_timesteps(steps), ours.append)
    s = PNDMScheduler(**common, skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1)
    s.set_timesteps(steps)
    x = x0.clone()
    for j, t in enumerate(s.timesteps):
        x = s.step(eps_fn(x, t.float().expand(2)), t, x).prev_sample
        if 1 <= j <= steps - 1:
            worst[f"plms step {j - 1}"] = rel(ours[j - 1], x)
    # UniPC: A1111 with 26 steps runs 27 UniPC steps on linspace(999, 0, 28) = multiples of 37
    # (integer timesteps); diffusers bh1 with "linspace" spacing and final_sigmas_type="sigma_min" runs
    # the same grid. Only final outputs compare (diffusers corrects a step inside the next call).
    n = len(a1111_timesteps(26))
    assert n == 27
    ours = []
    x_ours = unipc(eps_fn, ac, x0.clone(), n, None, ours.append)
    s = UniPCMultistepScheduler(**common, solver_order=3, solver_type="bh1", predict_x0=True,
                                lower_order_final=True, timestep_spacing="linspace", final_sigmas_type="sigma_min")
    s.set_timesteps(n)
    assert [int(t) for t in s.timesteps] == list(range(999, 0, -37)), s.timesteps
    x = x0.clone()
    for t in s.timesteps:
        x = s.step(eps_fn(x, t.float().expand(2)), t, x).prev_sample
    worst["unipc 27 steps out"] = rel(x_ours, x)
    for k, v in worst.items():
        assert v < 2e-5, (k, v)
    return worst


def main():
    global SEED, SHAPE
    from safetensors.torch import save_file
    import diffusers, scipy, safetensors
    args = refgen_args.parse("samplers", __doc__)
    OUT, SEED = args.out, args.seed
    rng = refgen_args.choices(SEED, "samplers.shape")
    if rng is not None:  # another latent size per image (any numel: torch's serial and 16-wide paths)
        SHAPE = (4, rng.randint(1, 6), rng.randint(1, 6))
    worst = cross_check_diffusers()
    cases = build_cases()
    tensors = {}
    for c in cases:
        out = run_case(c)
        for k, t in out.items():
            tensors[f"{c['name']}.{k}"] = t.to(torch.float32).contiguous()
    versions = {"torch": torch.__version__, "k-diffusion": "0.1.1.post1", "diffusers": diffusers.__version__,
                "scipy": scipy.__version__, "numpy": np.__version__, "safetensors": safetensors.__version__,
                "a1111": "1.10 (algorithms re-implemented: schedulers, LCM, DDIM, PLMS, UniPC)"}
    if SEED is not None:
        versions["seed"] = str(SEED)
    info = {
        "versions": versions,
        "schedule": {"type": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "num_train_timesteps": 1000},
        "latent_shape_per_image": list(SHAPE),
        "model": {
            "formula": "out = a(t) * x_in + b(t) * tanh(x_in); a = A0 + A1*cos(t/400), b = B0*sin(t/250 + B1), "
                       "a and b in double from the float32 t, the rest in float32",
            "uncond": list(COEF_UNCOND), "cond": list(COEF_COND),
            "guidance": "out = uncond + cfg_scale * (cond - uncond); if phi > 0: diffusers rescale_noise_cfg(out, cond, phi)",
        },
        "noise": "A1111 ImageRNG: image i of the batch has seed = case seed + i and its own CPU torch.Generator; "
                 "draw 1 = the initial noise, each later draw = one randn([C,H,W]) per image, stacked; "
                 "with ensd != 0 the generators are re-seeded with seed + ensd after draw 1",
        "cross_checks": worst,
        "cases": cases,
    }
    os.makedirs(OUT, exist_ok=True)
    save_file(tensors, os.path.join(OUT, "cases.safetensors"), metadata={k: str(v) for k, v in versions.items()})
    with open(os.path.join(OUT, "info.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(len(cases), "cases,", os.path.getsize(os.path.join(OUT, "cases.safetensors")), "bytes")
    for k, v in worst.items():
        print(f"  cross-check {k}: {v:.2e}")


if __name__ == "__main__":
    main()
