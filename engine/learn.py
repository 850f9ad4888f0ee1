"""Prior learning by coordinate descent (COMBINER, Guo et al. 2023, sec. 3.2).

Repeat: fit the posteriors of all training items with the prior fixed (batched beta-ELBO, one global
beta steered so the average KL equals the target rate), then set the prior in closed form
    mu_p = mean_n mu_n,   sigma_p^2 = mean_n (sigma_n^2 + (mu_n - mu_p)^2).
All posteriors start from one shared SIREN initialisation so hidden units stay aligned across items
and the prior mean becomes a useful starting point for the encoder.

`learn_prior` is a generator: it yields `LearnEvent`s and returns the `Prior`.
"""
from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Generator

import numpy as np
import torch
import torch.distributed as dist

from . import audio_envelope, hierarchy, latent, siren
from .config import InrConfig, LatentConfig, LearnConfig
from .fitting import Objective, adjust_beta, new_state, point_subsets
from .posterior import LN2, kl_gauss
from .prior import AudioLayout, Prior, unit_side
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


def _tile_units(signals: np.ndarray, tile: int) -> np.ndarray:
    """(N, t*p, t*p, C) crops -> (N*t*t, p, p, C) patches, each crop's patches row-major and contiguous;
    (N, t*L, C) audio runs -> (N*t, L, C) chunks in time order."""
    if signals.ndim == 3:
        n, m, c = signals.shape
        return np.ascontiguousarray(signals.reshape(n * tile, m // tile, c))
    n, h, w, c = signals.shape
    p = h // tile
    x = signals.reshape(n, tile, p, tile, p, c).transpose(0, 1, 3, 2, 4, 5)
    return np.ascontiguousarray(x.reshape(n * tile * tile, p, p, c))


NEW_FEATURE_GAIN = 0.01   # a grown level's input weights start at this fraction of a fresh initialisation


def _freq_rows(old: InrConfig, new: InrConfig) -> list[int] | None:
    """For each row of `new`'s Fourier embedding, the row of `old`'s that computes the same feature (-1: a
    frequency `old` lacks); None when `old` has a frequency `new` lacks (siren.fourier_embed's layout)."""
    fo, fn = (siren.fourier_freqs(c, torch.float64).numpy() if c.n_freqs else np.zeros(0) for c in (old, new))
    same = np.isclose(fo[:, None], fn[None, :], rtol=1e-6)                # (G, F)
    if old.in_dim != new.in_dim or not same.any(1).all():
        return None
    pos = same.argmax(1)                                                  # old frequency j -> its new index
    back = {int(k): j for j, k in enumerate(pos)}                # new frequency index -> old
    d, F, G = new.in_dim, len(fn), len(fo)
    rows = list(range(d))                                        # the coordinates themselves
    for part in (0, 1):                                          # sin block, then cos block
        for i in range(d):
            rows += [d + part * d * G + i * G + back[k] if k in back else -1 for k in range(F)]
    return rows


def grow(init: Prior, inr: InrConfig, lat: LatentConfig | None, seed: int = 0) -> Prior:
    """`init` as a prior of the larger architecture (inr, lat) that computes what it computed, for a warm start.

    Two growths of a shared-network latent prior, alone or together:
    - a wider network (`siren.widen`): new hidden units whose outputs nothing old reads;
    - more latent levels (`lat.levels` holds `init`'s levels in their order, plus new ones): a new level's
      latents start at zero with prior std one feature unit and a posterior equal to the prior (no KL), its
      upsampler is the identity and its input weights are a fresh initialisation times NEW_FEATURE_GAIN. At
      the latents' means the new features are zero, so the output is unchanged; the small input weights give
      the new latents a gradient from the first step;
    - more Fourier frequencies (`inr`'s frequencies include all of `init`'s, e.g. 2 up to 2 grown to 9 up to
      256): the new frequencies' input weights start at zero, so the output is unchanged, and the shared
      network learns them by gradient.
    Anything else raises ValueError. `init` itself is returned when the architecture is already (inr, lat)."""
    if init.inr == inr and init.latent == lat:
        return init
    old, cfg = init.latent, init.inr
    if init.inr_weights is None or old is None or lat is None:
        raise ValueError("only a shared-network latent prior can grow")
    kept = [g for g in lat.levels if g in old.levels]
    freq_rows = _freq_rows(cfg, inr)
    if (dataclasses.replace(lat, levels=old.levels) != old or kept != list(old.levels)
            or len(set(lat.levels)) != len(lat.levels) or inr.width < cfg.width
            or dataclasses.replace(inr, width=cfg.width, features=old.features, n_freqs=cfg.n_freqs,
                                   max_freq=cfg.max_freq) != cfg
            or inr.features != lat.features or freq_rows is None):
        raise ValueError("the initial prior has another architecture")
    w = torch.from_numpy(init.inr_weights)
    if inr.width > cfg.width:
        w, cfg = siren.widen(w, cfg, inr.width, seed)
    c, e = lat.channels, cfg.embed_dim
    layers = [(a[0], b[0]) for a, b in siren.unflatten(w[None], cfg)]      # W (in, out), b (1, out)
    fresh = siren.unflatten(siren.siren_init(inr, seed + 1)[None], inr)[0][0][0] * NEW_FEATURE_GAIN
    old_emb = layers[0][0][:e]                                             # (embed_dim, width)
    rows = [torch.cat([old_emb[j:j + 1] if j >= 0 else torch.zeros_like(old_emb[:1])
                       for j in freq_rows])]
    e_new = inr.embed_dim
    lat_mu, lat_ls, lat_post, ups = [], [], [], []
    old_ups = latent.split_upsampler(torch.from_numpy(init.upsampler), old)
    new_ups = latent.split_upsampler(latent.identity_upsampler(lat), lat)
    old_sl = latent.level_slices(old)
    post = init.start_logstd()
    for i, g in enumerate(lat.levels):
        if g in old.levels:
            j = old.levels.index(g)
            rows.append(layers[0][0][e + j * c:e + (j + 1) * c])
            sl = old_sl[j]
            lat_mu.append(init.mu[sl]), lat_ls.append(init.logstd[sl]), lat_post.append(post[sl])
            ups.append(old_ups[j])
        else:
            rows.append(fresh[e_new + i * c:e_new + (i + 1) * c])
            m = g ** lat.dim * c
            ls = np.full(m, -np.log(lat.scale), np.float32)
            lat_mu.append(np.zeros(m, np.float32)), lat_ls.append(ls), lat_post.append(ls)
            ups.append(new_ups[i])
    layers[0] = (torch.cat(rows), layers[0][1])
    flat = torch.cat([t.flatten() for wb in layers for t in wb]).numpy().astype(np.float32)
    ups_flat = torch.cat([t.flatten() for wb in ups for t in wb]).numpy().astype(np.float32)
    mu, logstd = np.concatenate(lat_mu), np.concatenate(lat_ls)
    n = mu.shape[0]
    return dataclasses.replace(
        init, inr=inr, latent=lat, mu=mu, logstd=logstd, post_logstd=np.concatenate(lat_post),
        order=np.random.default_rng(seed).permutation(n).astype(np.int64), kl_profile=np.zeros(n, np.float32),
        upsampler=ups_flat, inr_weights=flat, info=dict(init.info))


def learn_prior(signals: np.ndarray, cfg: LearnConfig, device: torch.device,
                checkpoint: str | os.PathLike | None = None, data_info: dict | None = None,
                compile: bool = False, init: Prior | None = None, audio: AudioLayout | None = None,
                patch: int = 0, snapshot=None) -> Generator[LearnEvent, None, Prior]:
    """signals: (N, H, W, C) uint8 images, or (N, L, C) float audio chunks in [-1, 1] (give `audio`, the
    chunk layout the prior will code). All items the same size; `patch` marks an image prior for patches of
    that side. Returns the learned Prior; its rate is bits per pixel for images and kbit/s for audio.

    Latent priors (`cfg.latent`, with `patch`): every item is a crop of cfg.tile x cfg.tile patches whose latent
    grids are stitched as the codec stitches an image's; the items the prior averages over are the patches.
    Audio latent priors (`cfg.latent.dim` 1): every item is a run of cfg.tile consecutive chunks, (N, tile*L, C).
    The shared upsampler is learned by gradient with the posteriors, like the reparameterisation.

    `cfg.crop_delta` (shared-network latent priors): every training crop also fits a network delta of its own
    under the rate, as the encoder gives every group of patches (hierarchy.CropDeltas).

    `snapshot(prior)`, if given, receives the prior after every M-step but the last (long runs save it).

    `init`: continue from an earlier prior of the same architecture (its mean, std, typical posterior
    std, beta, reparameterisation and upsampler) instead of a fresh SIREN initialisation. A shared-network
    prior may also be smaller than `cfg.inr` and `cfg.latent` (narrower, fewer latent levels or Fourier
    frequencies): it is grown without changing its output (`grow`), so training continues from where it stood.

    Distributed: when torch.distributed is initialised (e.g. under torchrun), every process passes the same
    `signals` (and its own `checkpoint` path) and fits the chunks of `cfg.batch` items it owns; KL, prior
    statistics and the gradient of the shared parameters are reduced across processes, and the result
    equals a 1-process run.
    """
    lat_cfg = cfg.latent
    signals = signals[: cfg.n_items]
    per_item = 1
    if lat_cfg is not None:
        if audio is not None:
            if lat_cfg.dim != 1 or signals.shape[1] != cfg.tile * audio.chunk:
                raise ValueError(f"audio latent priors learn on 1-D grids over runs of {cfg.tile} chunks of "
                                 f"{audio.chunk} samples")
        elif lat_cfg.dim != 2 or not patch or signals.shape[1] != cfg.tile * patch or signals.shape[2] != cfg.tile * patch:
            raise ValueError(f"latent priors learn on crops of {cfg.tile}x{cfg.tile} patches of side {patch}")
        signals = _tile_units(signals, cfg.tile)
        per_item = cfg.tile ** lat_cfg.dim
    weights = None
    if cfg.envelope:  # audio: every chunk at the reference level, its error weighed by its level (as the codec)
        if audio is None:
            raise ValueError("the chunk envelope is for audio priors")
        ones = np.ones((*signals.shape[:2], 1), dtype=np.float32)
        signals, weights = audio_envelope.normalise(signals, ones, audio_envelope.codes(signals, ones))
    n, *grid, c = signals.shape
    inr = cfg.inr
    assert inr.out_dim == c and inr.in_dim == len(grid)
    assert inr.features == (lat_cfg.features if lat_cfg is not None else 0)
    npix = int(np.prod(grid))
    target_bits = cfg.rate_bpp * npix  # rate_bpp: bits per pixel, or per sample for audio
    emb = siren.fourier_embed(siren.grid_coords(tuple(grid), device=device), inr)

    def targets(s: slice) -> torch.Tensor:
        return image_targets(signals[s], device) if audio is None else audio_targets(signals[s], device)
    n_lat = lat_cfg.n_latents if lat_cfg is not None else 0
    shared_inr = lat_cfg is not None and lat_cfg.shared   # one INR for all patches, learned like the upsampler
    P = n_lat + (0 if shared_inr else inr.n_params)

    step_units = max(per_item, cfg.batch // per_item * per_item)  # chunks hold whole crops
    all_chunks = [slice(i, min(n, i + step_units)) for i in range(0, n, step_units)]
    red = _Reducer(len(all_chunks), device)
    mine = [i for i in range(len(all_chunks)) if red.mine(i)]
    chunks = [all_chunks[i] for i in mine]

    w_init = siren.siren_init(inr, cfg.seed, cfg.out_init_scale).to(device)
    std0 = siren.init_std(inr, cfg.out_init_scale).to(device)
    inr_init = w_init
    if lat_cfg is not None:  # latents start at zero with a prior std of one feature unit
        lat0, lat_std = torch.zeros(n_lat, device=device), torch.full((n_lat,), 1.0 / lat_cfg.scale, device=device)
        w_init = lat0 if shared_inr else torch.cat([lat0, w_init])
        std0 = lat_std if shared_inr else torch.cat([lat_std, std0])
    mu_p, logstd_p = torch.zeros(P, device=device), torch.log(std0)
    shared = {}   # parameters every network of the prior shares, learned by gradient
    if cfg.reparam:
        shared["mix"] = (siren.identity_mix(inr).to(device), cfg.mix_lr)
    if lat_cfg is not None:
        shared["ups"] = (latent.identity_upsampler(lat_cfg).to(device), cfg.ups_lr)
    if shared_inr:
        shared["inr"] = (inr_init, cfg.ups_lr)
    beta0 = torch.full((1, 1), cfg.beta_init, device=device)
    beta_range = (cfg.beta_init * 1e-2, cfg.beta_init * 1e2)  # anti-windup bounds of the controller
    states = [new_state(w_init.expand(s.stop - s.start, P), (std0.log() + cfg.init_logstd_offset).expand(s.stop - s.start, P),
                        beta0, cfg.lr, cfg.lr_std) for s in chunks]
    if init is not None:
        init = grow(init, inr, lat_cfg, cfg.seed)
        if init.inr != inr or (init.mix is not None) != cfg.reparam or init.latent != lat_cfg:
            raise ValueError("the initial prior has another architecture")
        mu_p, logstd_p = (torch.from_numpy(a).to(device) for a in (init.mu, init.logstd))
        ls0 = torch.from_numpy(init.start_logstd()).to(device)
        beta0 = torch.full((1, 1), init.beta, device=device).clamp(*beta_range)
        states = [new_state(mu_p.expand(s.stop - s.start, P), ls0.expand(s.stop - s.start, P), beta0, cfg.lr,
                            cfg.lr_std) for s in chunks]
        if init.mix is not None:
            shared["mix"] = (torch.from_numpy(init.mix).to(device), cfg.mix_lr)
        if init.upsampler is not None:
            shared["ups"] = (torch.from_numpy(init.upsampler).to(device), cfg.ups_lr)
        if init.inr_weights is not None:
            shared["inr"] = (torch.from_numpy(init.inr_weights).to(device), cfg.ups_lr)
    params = {k: v.clone().requires_grad_(True) for k, (v, _) in shared.items()}
    opts = {k: torch.optim.Adam([params[k]], lr=lr) for k, (_, lr) in shared.items()}
    if cfg.crop_delta and not shared_inr:
        raise ValueError("crop deltas are for shared-network latent priors")
    deltas = (hierarchy.CropDeltas(inr, params["inr"], [(s.stop - s.start) // per_item for s in chunks], per_item,
                                   cfg.lr, cfg.lr_std, beta0) if cfg.crop_delta else None)
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
        if deltas is not None:
            deltas.load_state_dict(saved)
        for k in params:
            with torch.no_grad():
                params[k].copy_(saved[k])
            opts[k].load_state_dict(saved[k + "_opt"])
        start_round, done = saved["round"], saved["done"]

    def make_field(s: slice) -> latent.Field:
        rows = 1 if audio is not None else cfg.tile
        cv = latent.uniform_canvases((s.stop - s.start) // per_item, rows, cfg.tile, device) if lat_cfg else None
        return latent.Field(inr, emb, None, lat_cfg, None, cv, unit_side(patch, audio), None, compile)

    def bind(f: latent.Field, j: int | None = None, gen=None) -> None:
        """The shared parameters' current values, inside this step's graph; with crop deltas and a chunk `j`,
        each patch's network is the shared one plus its crop's delta (sampled with `gen`, the means without)."""
        f.mix = siren.split_mix(params["mix"], inr) if "mix" in params else None
        f.ups = params.get("ups")
        f.shared = params.get("inr") if j is None else deltas.weights(j, params["inr"], gen)

    total = _total_steps(cfg)
    fields = [make_field(s) for s in chunks]
    def current_prior(rounds_done: int) -> Prior:
        """The prior as it stands after M-step `rounds_done` (0: the first), with its KL profile and provenance.
        Its recorded configuration says `rounds_done` rounds: a snapshot is what a run that short would give."""
        with torch.no_grad():
            for j, o in enumerate(objs):
                bind(o.field, j if deltas is not None else None)
            profile = (red.total({i: (kl_gauss(st.mu, st.logstd, mu_p, logstd_p) / LN2).sum(0)
                                  for i, st in zip(mine, states)}) / n).cpu().numpy().astype(np.float32)
            final_psnr = float(red.total({i: (-10 * torch.log10(o.mean_mse(st))).sum()
                                          for i, o, st in zip(mine, objs, states)})) / n
            post_ls = (red.total({i: st.logstd.sum(0) for i, st in zip(mine, states)}) / n).cpu().numpy()
        perm = np.random.default_rng(cfg.seed).permutation
        # latents are coded first: the weights' fine-tuning after them can still make up for their sample
        order = (np.concatenate([perm(n_lat), n_lat + perm(P - n_lat)]) if n_lat else perm(P)).astype(np.int64)
        history = list(init.info.get("history", [])) + [init.info.get("learn")] if init is not None else []
        learned = asdict(dataclasses.replace(cfg, rounds=rounds_done)) | {"inr": inr.to_dict()}
        info = dict(data_info or {}, items=n, history=history, item_shape=[*grid, c], learn=learned,
                    train_psnr_mean_weights=round(final_psnr, 3), train_kl_bits=round(float(profile.sum()), 1),
                    processes=red.world, created=time.strftime("%Y-%m-%d"))
        if deltas is not None:   # the crops' deltas: their KL per patch and the closed-form scales (log2 per layer)
            with torch.no_grad():
                dkl = float(red.total({i: deltas.kl_bits(j).sum() for j, i in enumerate(mine)})) / n
                scales = hierarchy.layer_means(inr, deltas.logstd_p[None])[0] / float(np.log(2.0))
            info.update(train_delta_kl_bits=round(dkl, 1), train_delta_log2_scales=[round(float(v), 2) for v in scales])
        rate = cfg.rate_bpp if audio is None else cfg.rate_bpp * audio.sample_rate / 1000.0  # kbit/s

        def out(k: str) -> np.ndarray | None:
            return params[k].detach().cpu().numpy().astype(np.float32) if k in params else None
        return Prior(inr=inr, modality="image" if audio is None else "audio", mu=mu_p.cpu().numpy().astype(np.float32),
                     logstd=logstd_p.cpu().numpy().astype(np.float32), order=order, kl_profile=profile,
                     kappa=cfg.kappa, rate=rate, beta=float(beta0), info=info,
                     post_logstd=post_ls.astype(np.float32), audio=audio, mix=out("mix"), patch=patch,
                     latent=lat_cfg, upsampler=out("ups"), inr_weights=out("inr"))

    for rnd in range(start_round, cfg.rounds + 1):
        steps = cfg.first_steps if rnd == 0 else cfg.round_steps
        # one noise stream per chunk and round: the same whichever process owns the chunk
        gens = [torch.Generator(device=device).manual_seed(cfg.seed + 7919 * rnd + 104729 * (i + 1)) for i in mine]
        # with cfg.points < 1, each round draws its subsets from its own stream (a resumed round draws the same)
        objs = [Objective(f, targets(s), mu_p, logstd_p, None, 1,
                          None if weights is None else torch.from_numpy(weights[s]).to(device),
                          point_subsets(f, cfg.points, cfg.seed + 7919 * rnd))
                for f, s in zip(fields, chunks)]
        for it in range(steps):
            sums = {}
            for j, (i, st, obj, g) in enumerate(zip(mine, states, objs, gens)):
                kld = None
                if deltas is not None:   # the crops' deltas: KL at the same beta, distortion through the field
                    bind(obj.field, j, g)
                    kld = deltas.kl_bits(j)
                    deltas.states[j].opt.zero_grad(set_to_none=True)
                    (st.beta.reshape(()) * kld.sum()).backward()
                else:
                    bind(obj.field)
                mse, kl = obj.step(st, g)   # accumulates the shared gradients, steps the posteriors
                if deltas is not None:
                    deltas.states[j].opt.step()
                kl_sum = kl[:, 0].sum().double() + (kld.detach().sum().double() if kld is not None else 0.0)
                sums[i] = torch.stack([kl_sum, (-10 * torch.log10(mse)).sum().double()])
                for k in params:
                    sums[i] = torch.cat([sums[i], params[k].grad.double().flatten()])
                    params[k].grad = None
            tot = red.total(sums)
            kl_mean, psnr_mean = float(tot[0]) / n, float(tot[1]) / n
            o = 2
            for k in params:
                m = params[k].numel()
                params[k].grad = tot[o:o + m].to(params[k].dtype).reshape(params[k].shape)
                o += m
                if done >= cfg.shared_warmup:   # the shared networks wait until the posteriors fit
                    opts[k].step()
                params[k].grad = None
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
            if deltas is not None:
                n_crops = n // per_item
                deltas.set_scales(red.total({i: deltas.layer_sums(j) for j, i in enumerate(mine)}) / n_crops)
        if ck:
            _save_checkpoint(ck, cfg, states, mu_p, logstd_p, rnd + 1, done, params, opts, deltas)
        if snapshot is not None and rnd < cfg.rounds:
            snapshot(current_prior(rnd))

    return current_prior(cfg.rounds)


def _save_checkpoint(path: Path, cfg, states, mu_p, logstd_p, rnd: int, done: int, params=None, opts=None,
                     deltas: "hierarchy.CropDeltas | None" = None) -> None:
    tmp = path.with_name(path.name + ".tmp")
    extra = {}
    for k in params or {}:
        extra[k], extra[k + "_opt"] = params[k].detach(), opts[k].state_dict()
    if deltas is not None:
        extra |= deltas.state_dict()
    torch.save(extra | {"config": repr(cfg), "mu_p": mu_p, "logstd_p": logstd_p, "round": rnd, "done": done,
                "mu": [st.mu.detach() for st in states], "logstd": [st.logstd.detach() for st in states],
                "beta": [st.beta for st in states], "opt": [st.opt.state_dict() for st in states]}, tmp)
    os.replace(tmp, path)
