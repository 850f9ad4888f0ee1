"""Prior learning by coordinate descent (COMBINER, Guo et al. 2023, sec. 3.2).

Repeat: fit the posteriors of all training items with the prior fixed (batched beta-ELBO, one global
beta steered so the average KL equals the target rate), then set the prior in closed form
    mu_p = mean_n mu_n,   sigma_p^2 = mean_n (sigma_n^2 + (mu_n - mu_p)^2).
All posteriors start from one shared SIREN initialisation so hidden units stay aligned across items
and the prior mean becomes a useful starting point for the encoder.

`learn_prior` is a generator: it yields `LearnEvent`s and returns the `Prior`.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Generator

import numpy as np
import torch
import torch.distributed as dist

from . import siren
from .config import LearnConfig
from .fitting import Objective, adjust_beta, make_distortion, new_state
from .posterior import LN2, kl_gauss
from .prior import AudioLayout, Prior
from .signals import audio_targets, image_targets


@dataclass
class LearnEvent:
    round: int
    step: int
    total_steps: int
    psnr: float          # mean PSNR (dB) of sampled reconstructions
    kl_bits: float       # mean KL per item (bits)
    rate: float          # mean KL per pixel (bits)
    beta: float


def _total_steps(cfg: LearnConfig) -> int:
    return cfg.first_steps + cfg.rounds * cfg.round_steps


class _Reducer:
    """Sums over items that come out bit-identical however the chunks are spread over processes.

    Each process owns whole chunks (chunk i -> rank i % world). A quantity is summed per chunk, placed in a
    (n_chunks, ...) float64 table (zeros for other ranks' chunks), all-reduced (adding zeros is exact) and
    then summed over chunks in chunk order, so 1 process and N processes compute the same numbers."""

    def __init__(self, n_chunks: int, device: torch.device):
        self.n, self.device = n_chunks, device
        self.world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        self.rank = dist.get_rank() if self.world > 1 else 0

    def mine(self, i: int) -> bool:
        return i % self.world == self.rank

    def total(self, parts: dict[int, torch.Tensor]) -> torch.Tensor:
        shape = next(iter(parts.values())).shape if parts else ()
        table = torch.zeros((self.n, *shape), dtype=torch.float64, device=self.device)
        for i, v in parts.items():
            table[i] = v.detach().to(torch.float64)
        if self.world > 1:
            dist.all_reduce(table)
        out = table[0].clone()
        for i in range(1, self.n):  # fixed order
            out += table[i]
        return out


def learn_prior(signals: np.ndarray, cfg: LearnConfig, device: torch.device,
                checkpoint: str | os.PathLike | None = None, data_info: dict | None = None,
                compile: bool = False, init: Prior | None = None, audio: AudioLayout | None = None,
                patch: int = 0) -> Generator[LearnEvent, None, Prior]:
    """signals: (N, H, W, C) uint8 images, or (N, L, C) float audio chunks in [-1, 1] (give `audio`, the
    chunk layout the prior will code). All items the same size; `patch` marks an image prior for patches of
    that side. Returns the learned Prior; its rate is bits per pixel for images and kbit/s for audio.

    `init`: continue from an earlier prior of the same architecture (its mean, std, typical posterior
    std, beta and reparameterisation) instead of a fresh SIREN initialisation.

    Distributed: when torch.distributed is initialised (e.g. under torchrun), every process passes the same
    `signals` (and its own `checkpoint` path) and fits the chunks of `cfg.batch` items it owns; KL, prior statistics and the gradient of
    the shared reparameterisation are reduced across processes, and the result equals a 1-process run.
    """
    signals = signals[: cfg.n_items]
    n, *grid, c = signals.shape
    inr = cfg.inr
    assert inr.out_dim == c and inr.in_dim == len(grid)
    npix = int(np.prod(grid))
    target_bits = cfg.rate_bpp * npix  # rate_bpp: bits per pixel, or per sample for audio
    emb = siren.fourier_embed(siren.grid_coords(tuple(grid), device=device), inr)

    def targets(s: slice) -> torch.Tensor:
        return image_targets(signals[s], device) if audio is None else audio_targets(signals[s], device)
    P = inr.n_params

    all_chunks = [slice(i, min(n, i + cfg.batch)) for i in range(0, n, cfg.batch)]
    red = _Reducer(len(all_chunks), device)
    mine = [i for i in range(len(all_chunks)) if red.mine(i)]
    chunks = [all_chunks[i] for i in mine]

    w_init = siren.siren_init(inr, cfg.seed, cfg.out_init_scale).to(device)
    std0 = siren.init_std(inr, cfg.out_init_scale).to(device)
    mu_p, logstd_p = torch.zeros(P, device=device), torch.log(std0)
    mix = siren.identity_mix(inr).to(device) if cfg.reparam else None
    beta0 = torch.full((1, 1), cfg.beta_init, device=device)
    beta_range = (cfg.beta_init * 1e-2, cfg.beta_init * 1e2)  # anti-windup bounds of the controller
    states = [new_state(w_init.expand(s.stop - s.start, P), (std0.log() + cfg.init_logstd_offset).expand(s.stop - s.start, P),
                        beta0, cfg.lr, cfg.lr_std) for s in chunks]
    if init is not None:
        if init.inr != inr or (init.mix is not None) != cfg.reparam:
            raise ValueError("the initial prior has another architecture")
        mu_p, logstd_p = (torch.from_numpy(a).to(device) for a in (init.mu, init.logstd))
        ls0 = torch.from_numpy(init.post_logstd).to(device) if init.post_logstd is not None else logstd_p - 2
        beta0 = torch.full((1, 1), init.beta, device=device).clamp(*beta_range)
        states = [new_state(mu_p.expand(s.stop - s.start, P), ls0.expand(s.stop - s.start, P), beta0, cfg.lr,
                            cfg.lr_std) for s in chunks]
        if init.mix is not None:
            mix = torch.from_numpy(init.mix).to(device)
    mix_opt = None
    if mix is not None:
        mix = mix.clone().requires_grad_(True)
        mix_opt = torch.optim.Adam([mix], lr=cfg.mix_lr)
    start_round, done = 0, 0
    ck = Path(checkpoint) if checkpoint else None
    if ck and ck.exists():
        saved = torch.load(ck, map_location=device, weights_only=True)
        if saved["config"] != repr(cfg):
            raise ValueError(f"checkpoint {ck} was made with another configuration")
        mu_p, logstd_p = saved["mu_p"], saved["logstd_p"]
        for st, m, s, b, o in zip(states, saved["mu"], saved["logstd"], saved["beta"], saved["opt"]):
            with torch.no_grad():
                st.mu.copy_(m), st.logstd.copy_(s)
            st.beta = b
            st.opt.load_state_dict(o)
        if mix is not None:
            with torch.no_grad():
                mix.copy_(saved["mix"])
            mix_opt.load_state_dict(saved["mix_opt"])
        start_round, done = saved["round"], saved["done"]

    dist_fn = make_distortion(inr, compile)
    total = _total_steps(cfg)
    for rnd in range(start_round, cfg.rounds + 1):
        steps = cfg.first_steps if rnd == 0 else cfg.round_steps
        # one noise stream per chunk and round: the same whichever process owns the chunk
        gens = [torch.Generator(device=device).manual_seed(cfg.seed + 7919 * rnd + 104729 * (i + 1)) for i in mine]
        objs = [Objective(inr, emb, targets(s), mu_p, logstd_p) for s in chunks]
        for o in objs:
            o.distortion = dist_fn
        for it in range(steps):
            sums = {}
            for i, st, obj, g in zip(mine, states, objs, gens):
                obj.mix = siren.split_mix(mix, inr) if mix is not None else None
                mse, kl = obj.step(st, g)   # accumulates the shared mix gradient, steps the posteriors
                sums[i] = torch.stack([kl[:, 0].sum().double(), (-10 * torch.log10(mse)).sum().double()])
                if mix is not None:
                    sums[i] = torch.cat([sums[i], mix.grad.double().flatten()])
                    mix.grad = None
            tot = red.total(sums)
            kl_mean, psnr_mean = float(tot[0]) / n, float(tot[1]) / n
            if mix is not None:
                mix.grad = tot[2:].to(mix.dtype)
                mix_opt.step()
                mix.grad = None
            beta = states[0].beta if states else beta0
            if done >= cfg.warmup or init is not None:
                beta = adjust_beta(beta, torch.tensor(kl_mean, device=device), target_bits, cfg.beta_step)
                # anti-windup: right after a prior update the KL can sit below target for a while
                beta = beta.clamp(*beta_range)
            for st in states:  # one global beta, shared by all chunks
                st.beta = beta
            beta0 = beta
            done += 1
            if it % 10 == 0 or it == steps - 1:
                yield LearnEvent(rnd, done, total, psnr_mean, kl_mean, kl_mean / npix, float(beta))
        with torch.no_grad():
            mu_p = (red.total({i: st.mu.sum(0) for i, st in zip(mine, states)}) / n).float()
            var = red.total({i: (torch.exp(2.0 * st.logstd) + (st.mu - mu_p) ** 2).sum(0)
                             for i, st in zip(mine, states)}) / n
            logstd_p = (0.5 * torch.log(var)).float()
        if ck:
            _save_checkpoint(ck, cfg, states, mu_p, logstd_p, rnd + 1, done, mix, mix_opt)

    with torch.no_grad():
        mixers = siren.split_mix(mix, inr) if mix is not None else None
        for o in objs:
            o.mix = mixers
        profile = (red.total({i: (kl_gauss(st.mu, st.logstd, mu_p, logstd_p) / LN2).sum(0)
                              for i, st in zip(mine, states)}) / n).cpu().numpy().astype(np.float32)
        final_psnr = float(red.total({i: (-10 * torch.log10(o.mean_mse(st))).sum()
                                      for i, o, st in zip(mine, objs, states)})) / n
        post_ls = (red.total({i: st.logstd.sum(0) for i, st in zip(mine, states)}) / n).cpu().numpy()
    order = np.random.default_rng(cfg.seed).permutation(P).astype(np.int64)
    history = list(init.info.get("history", [])) + [init.info.get("learn")] if init is not None else []
    info = dict(data_info or {}, items=n, history=history, item_shape=[*grid, c], learn=asdict(cfg) | {"inr": inr.to_dict()},
                train_psnr_mean_weights=round(final_psnr, 3), train_kl_bits=round(float(profile.sum()), 1),
                processes=red.world, created=time.strftime("%Y-%m-%d"))
    rate = cfg.rate_bpp if audio is None else cfg.rate_bpp * audio.sample_rate / 1000.0  # kbit/s
    return Prior(inr=inr, modality="image" if audio is None else "audio", mu=mu_p.cpu().numpy().astype(np.float32),
                 logstd=logstd_p.cpu().numpy().astype(np.float32), order=order, kl_profile=profile,
                 kappa=cfg.kappa, rate=rate, beta=float(beta0), info=info,
                 post_logstd=post_ls.astype(np.float32), audio=audio,
                 mix=mix.detach().cpu().numpy().astype(np.float32) if mix is not None else None, patch=patch)


def _save_checkpoint(path: Path, cfg, states, mu_p, logstd_p, rnd: int, done: int, mix=None, mix_opt=None) -> None:
    tmp = path.with_name(path.name + ".tmp")
    extra = {"mix": mix.detach(), "mix_opt": mix_opt.state_dict()} if mix is not None else {}
    torch.save(extra | {"config": repr(cfg), "mu_p": mu_p, "logstd_p": logstd_p, "round": rnd, "done": done,
                "mu": [st.mu.detach() for st in states], "logstd": [st.logstd.detach() for st in states],
                "beta": [st.beta for st in states], "opt": [st.opt.state_dict() for st in states]}, tmp)
    os.replace(tmp, path)
