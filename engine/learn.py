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

from . import siren
from .config import LearnConfig
from .fitting import Objective, adjust_beta, make_distortion, new_state
from .posterior import LN2, kl_gauss, prior_update
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


def learn_prior(signals: np.ndarray, cfg: LearnConfig, device: torch.device,
                checkpoint: str | os.PathLike | None = None, data_info: dict | None = None,
                compile: bool = False, init: Prior | None = None, audio: AudioLayout | None = None
                ) -> Generator[LearnEvent, None, Prior]:
    """signals: (N, H, W, C) uint8 images, or (N, L, C) float audio chunks in [-1, 1] (give `audio`, the
    chunk layout the prior will code). All items the same size. Returns the learned Prior; its rate is
    bits per pixel for images and kbit/s for audio.

    `init`: continue from an earlier prior of the same architecture (its mean, std, typical posterior
    std and beta) instead of a fresh SIREN initialisation, e.g. to refine a prior on more data.
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
    g = torch.Generator(device=device).manual_seed(cfg.seed)

    w_init = siren.siren_init(inr, cfg.seed, cfg.out_init_scale).to(device)
    std0 = siren.init_std(inr, cfg.out_init_scale).to(device)
    mu_p, logstd_p = torch.zeros(P, device=device), torch.log(std0)
    chunks = [slice(i, min(n, i + cfg.batch)) for i in range(0, n, cfg.batch)]
    beta0 = torch.full((1, 1), cfg.beta_init, device=device)
    beta_range = (cfg.beta_init * 1e-2, cfg.beta_init * 1e2)  # anti-windup bounds of the controller
    states = [new_state(w_init.expand(s.stop - s.start, P), (std0.log() + cfg.init_logstd_offset).expand(s.stop - s.start, P),
                        beta0, cfg.lr, cfg.lr_std) for s in chunks]
    if init is not None:
        if init.inr != inr:
            raise ValueError("the initial prior has another architecture")
        mu_p, logstd_p = (torch.from_numpy(a).to(device) for a in (init.mu, init.logstd))
        ls0 = torch.from_numpy(init.post_logstd).to(device) if init.post_logstd is not None else logstd_p - 2
        beta0 = torch.full((1, 1), init.beta, device=device).clamp(*beta_range)
        states = [new_state(mu_p.expand(s.stop - s.start, P), ls0.expand(s.stop - s.start, P), beta0, cfg.lr,
                            cfg.lr_std) for s in chunks]
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
        start_round, done = saved["round"], saved["done"]
        g.manual_seed(cfg.seed + 7919 * start_round)

    dist = make_distortion(inr, compile)
    total = _total_steps(cfg)
    for rnd in range(start_round, cfg.rounds + 1):
        steps = cfg.first_steps if rnd == 0 else cfg.round_steps
        objs = [Objective(inr, emb, targets(s), mu_p, logstd_p) for s in chunks]
        for o in objs:
            o.distortion = dist
        for it in range(steps):
            mses, kls = [], []
            for st, obj in zip(states, objs):
                mse, kl = obj.step(st, g)
                mses.append(mse), kls.append(kl[:, 0])
            mse, kl = torch.cat(mses), torch.cat(kls)
            kl_mean = float(kl.mean())
            beta = states[0].beta
            if done >= cfg.warmup or init is not None:
                beta = adjust_beta(beta, torch.tensor(kl_mean, device=device), target_bits, cfg.beta_step)
                # anti-windup: right after a prior update the KL can sit below target for a while
                beta = beta.clamp(*beta_range)
            for st in states:  # one global beta, shared by all chunks
                st.beta = beta
            done += 1
            if it % 10 == 0 or it == steps - 1:
                yield LearnEvent(rnd, done, total, float((-10 * torch.log10(mse)).mean()), kl_mean,
                                 kl_mean / npix, float(states[0].beta))
        with torch.no_grad():
            mu_all = torch.cat([st.mu for st in states])
            ls_all = torch.cat([st.logstd for st in states])
            mu_p, logstd_p = prior_update(mu_all, ls_all)
        if ck:
            _save_checkpoint(ck, cfg, states, mu_p, logstd_p, rnd + 1, done)

    with torch.no_grad():
        kl_w = kl_gauss(mu_all, ls_all, mu_p, logstd_p) / LN2  # (N, P) bits
        profile = kl_w.mean(0).cpu().numpy().astype(np.float32)
        final_psnr = float((-10 * torch.log10(torch.cat(
            [o.mean_mse(st) for o, st in zip(objs, states)]))).mean())
    order = np.random.default_rng(cfg.seed).permutation(P).astype(np.int64)
    history = list(init.info.get("history", [])) + [init.info.get("learn")] if init is not None else []
    info = dict(data_info or {}, items=n, history=history, item_shape=[*grid, c], learn=asdict(cfg) | {"inr": inr.to_dict()},
                train_psnr_mean_weights=round(final_psnr, 3), train_kl_bits=round(float(profile.sum()), 1),
                created=time.strftime("%Y-%m-%d"))
    rate = cfg.rate_bpp if audio is None else cfg.rate_bpp * audio.sample_rate / 1000.0  # kbit/s
    return Prior(inr=inr, modality="image" if audio is None else "audio", mu=mu_p.cpu().numpy().astype(np.float32),
                 logstd=logstd_p.cpu().numpy().astype(np.float32), order=order, kl_profile=profile,
                 kappa=cfg.kappa, rate=rate, beta=float(states[0].beta), info=info,
                 post_logstd=ls_all.mean(0).cpu().numpy().astype(np.float32), audio=audio)


def _save_checkpoint(path: Path, cfg, states, mu_p, logstd_p, rnd: int, done: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"config": repr(cfg), "mu_p": mu_p, "logstd_p": logstd_p, "round": rnd, "done": done,
                "mu": [st.mu.detach() for st in states], "logstd": [st.logstd.detach() for st in states],
                "beta": [st.beta for st in states], "opt": [st.opt.state_dict() for st in states]}, tmp)
    os.replace(tmp, path)
