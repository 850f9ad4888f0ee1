"""`combiner`: the command-line interface (encode, decode, info, learn-prior, priors).

Every error caused by input (bad files, missing priors, impossible rates) ends with a one-line message on
stderr and exit status 1; usage errors exit with 2 (argparse). Outputs are written atomically.
"""
from __future__ import annotations

import argparse
import hashlib
import math
import os
import signal
import sys
import time
from pathlib import Path

from .threads import configure_env

configure_env()  # before torch is imported (a no-op when engine/__init__ already did it)

from .errors import CombinerError  # noqa: E402

MAX_BPP = 64.0          # above 8 bits per channel of RGBA, twice over: a rate no image needs
MAX_KBPS = 100_000.0    # about 64 channels of 16-bit 96 kHz PCM
MAX_THREADS = 1024


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised as an exception so that temporary files are removed on the way out."""


def _on_sigterm(signum, frame):
    raise _Terminated()


def check_rate(opt: str, v: float | None, hi: float) -> None:
    """--bpp / --kbps: a finite positive number up to `hi`."""
    if v is None:
        return
    if not math.isfinite(v) or v <= 0:
        raise CombinerError(f"{opt} must be a positive number (got {v:g})")
    if v > hi:
        raise CombinerError(f"{opt} {v:g} is above the largest rate the codec writes ({hi:g})")


def check_common_options(a) -> None:
    """Options every encode shares, checked before any work (one-line errors, never a traceback)."""
    from . import container

    check_rate("--bpp", getattr(a, "bpp", None), MAX_BPP)
    check_rate("--kbps", getattr(a, "kbps", None), MAX_KBPS)
    seed = getattr(a, "seed", 0)
    if not container.varint_fits(seed):
        raise CombinerError(f"--seed {seed} is out of range (0 to {(1 << 63) - 1} fits every .cmb reader)"
                            if seed >= 0 else f"--seed must be 0 or positive (got {seed})")
    th = getattr(a, "threads", 0)
    if not 0 <= th <= MAX_THREADS:
        raise CombinerError(f"--threads must be 0 (choose from the work) or 1 to {MAX_THREADS} (got {th})")
    for opt in ("max_pixels", "max_seconds"):
        v = getattr(a, opt, None)
        if v is not None and (not math.isfinite(v) or v < 0):
            raise CombinerError(f"--{opt.replace('_', '-')} must be 0 (no limit) or positive (got {v:g})")
    if hasattr(a, "try_delta"):
        from .audio_codec import adapt_mode

        adapt_mode(a.delta, a.try_delta)   # a contradictory delta choice is refused before any work


def _init_distributed(device: str) -> tuple[int, int]:
    """Join the process group when started by torchrun (WORLD_SIZE > 1) -> (rank, world size).
    NCCL between GPUs, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        use_nccl = device != "cpu" and torch.cuda.is_available()
        if use_nccl:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if use_nccl else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise CombinerError("--device cuda: no CUDA device is available")
    return torch.device(name)


def _shortlist(text: str) -> int:
    """argparse type of --shortlist: an integer from 1 to 64."""
    try:
        m = int(text)
    except ValueError:
        m = 0
    if not 1 <= m <= 64:
        raise argparse.ArgumentTypeError(f"expected an integer from 1 to 64, got {text!r}")
    return m


def add_shortlist_option(parser: argparse.ArgumentParser) -> None:
    """--shortlist M, for `combiner encode` and the rate-distortion benchmarks (None: the modality's default)."""
    parser.add_argument("--shortlist", type=_shortlist, default=None, metavar="M",
                        help="per block, send the candidate of least distortion among the M of largest q/p "
                        "(encode time grows with M; files decode the same way; 1: the largest). Default 8")


def _fail(msg: str) -> int:
    print(f"combiner: error: {msg}", file=sys.stderr)
    return 1


def _reader_gone() -> int:
    """Whoever read our standard output went away (`combiner info F | head -3`): stop quietly, as a Unix tool
    killed by SIGPIPE does, with the status a shell gives one (141). Standard output is pointed at /dev/null so
    that the interpreter's last flush at exit does not complain either. Files are written atomically, so an
    encode stopped this way leaves no partial output."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):   # stdout replaced by an object without a descriptor
        pass
    return 128 + getattr(signal, "SIGPIPE", 13)


def cmd_learn_prior(a) -> int:
    import torch
    from tqdm import tqdm

    from .config import InrConfig, LearnConfig
    from .learn import grow, learn_prior
    from .media import load_training_images

    if a.threads:
        torch.set_num_threads(a.threads)
    if (a.rate is None) == (a.kbps is None):
        raise CombinerError("give --rate (bits per pixel, images) or --kbps (audio)")
    if a.crop_delta and not (a.latent and a.shared_inr):
        raise CombinerError("--crop-delta needs --latent and --shared-inr (a delta on the shared network)")
    lat = None
    if a.latent:
        from .config import LatentConfig

        if not a.patch and a.kbps is None:
            raise CombinerError("--latent needs --patch or --kbps (latent grids are per patch or per audio chunk)")
        side = a.chunk if a.kbps is not None else a.patch
        try:
            levels = tuple(int(g) for g in a.latent.split(","))
        except ValueError:
            raise CombinerError(f"--latent {a.latent!r}: give grid sides per patch (e.g. 32,16,8,4,2) or cells per "
                                f"chunk (e.g. 400,200,100,50,25)") from None
        if any(g < 2 or side % g for g in levels):
            raise CombinerError(f"--latent {a.latent}: every grid side must be 2 or more and divide the "
                                f"{'patch side' if a.patch else 'chunk length'} {side}")
        lat = LatentConfig(levels=levels, channels=a.latent_channels, shared=a.shared_inr, dim=1 if a.kbps is not None else 2)
    layout = None
    if a.envelope and a.kbps is None:
        raise CombinerError("--envelope is for audio priors (give --kbps)")
    if a.kbps is not None:  # audio: a folder of audio files cut into chunks, one INR per chunk
        from .audio_io import load_training_chunks
        from .prior import AudioLayout

        layout = AudioLayout(a.chunk, a.sample_rate)
        run = a.chunk * (a.tile if a.latent else 1)   # latent priors learn on runs of TILE consecutive chunks
        data, files = load_training_chunks(a.data, run, a.sample_rate, a.items, a.seed, a.skip,
                                           normalise=a.level_normalise)
        n, _, c = data.shape
        rate = a.kbps * 1000.0 / a.sample_rate   # bits per sample
        beta0 = 3e-7 / rate                       # audio MSEs are ~10x smaller than images'
        out_scale = 0.1
        what = f"runs of {a.tile} chunks" if a.latent else "chunks"
        data_items = f"{what} {a.skip}..{a.skip + n - 1} of the seed-{a.seed} shuffle of {len(files)} files"
        if a.level_normalise:
            from .audio_gain import REF_DBFS

            data_items += f", every file at {REF_DBFS:g} dBFS (gated RMS)"
        if a.envelope:
            data_items += ", every chunk at that level (chunk envelope)"
    elif a.patch:  # photos of any size: seeded random square crops, one INR per crop
        from .media import load_training_patches

        side = a.patch * (a.tile if a.latent else 1)   # latent priors learn on crops of tile x tile patches
        data, files = load_training_patches(a.data, side, a.items or 512, a.seed, a.skip)
        n, h, w, c = data.shape
        rate, beta0, out_scale = a.rate, 3e-6 / a.rate, 1.0
        data_items = f"{side}x{side} crops {a.skip}..{a.skip + n - 1} of the seed-{a.seed} stream over {len(files)} photos"
    else:
        data = load_training_images(a.data)
        data = data[a.skip:]
        if a.items:
            data = data[: a.items]
        n, h, w, c = data.shape
        rate, beta0, out_scale = a.rate, 3e-6 / a.rate, 1.0  # beta's scale falls roughly as 1/rate
        data_items = f"items {a.skip}..{a.skip + n - 1}"
    if lat is not None and lat.shared:
        out_scale = 0.1  # one network for all units starts near mid-grey rather than at full-scale noise
    inr = InrConfig(in_dim=1 if layout else 2, out_dim=c, width=a.width, depth=a.depth, n_freqs=a.freqs,
                    max_freq=a.max_freq, features=lat.features if lat else 0)
    cfg = LearnConfig(rate_bpp=rate, n_items=n, batch=a.batch or n, first_steps=a.first_steps,
                      round_steps=a.round_steps, rounds=a.rounds, seed=a.seed, inr=inr,
                      beta_init=a.beta_init or beta0, out_init_scale=out_scale, reparam=a.reparam, latent=lat,
                      tile=a.tile, warmup=a.warmup if a.warmup is not None else LearnConfig.warmup,
                      ups_lr=a.shared_lr, envelope=bool(a.envelope and layout is not None), points=a.points,
                      shared_warmup=a.shared_warmup, crop_delta=a.crop_delta)
    digest = hashlib.sha256(Path(a.data).read_bytes()).hexdigest()[:16] if Path(a.data).is_file() else None
    info = {"name": a.name, "data": Path(a.data).name, "data_sha256_16": digest, "data_items": data_items}
    rank, world = _init_distributed(a.device)
    dev = _device(a.device)
    if world > 1 and dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    out = Path(a.out)
    ck = Path(a.checkpoint) if a.checkpoint else out.with_name(out.name + ".ckpt")
    if world > 1:  # one checkpoint per process: each holds the posteriors of its own chunks
        ck = ck.with_name(f"{ck.name}.rank{rank}of{world}")
    if ck.exists() and not a.resume:
        ck.unlink()
    init = None
    if a.init_prior:
        from .prior import Prior

        init = Prior.load(a.init_prior)
        try:
            init = grow(init, inr, lat, a.seed)   # the seed learn_prior would grow with (cfg.seed)
        except ValueError:
            raise CombinerError(f"--init-prior {a.init_prior} has another architecture than the options given "
                                f"(a warm start may only widen a shared network or add latent levels or "
                                f"Fourier frequencies)") from None
    t0 = time.time()

    def snapshot(p) -> None:  # after every prior update: a long run always leaves its latest prior in OUT
        if not rank:
            p.info.update(train_seconds=round(time.time() - t0, 1), device=str(dev), partial=True)
            p.save(out)
    gen = learn_prior(data, cfg, dev, checkpoint=ck, data_info=info, compile=a.compile, init=init, audio=layout,
                      patch=a.patch, snapshot=snapshot)
    bar = tqdm(total=cfg.first_steps + cfg.rounds * cfg.round_steps, unit="step",
               disable=True if a.quiet or rank else None)
    try:
        while True:
            ev = next(gen)
            bar.n = ev.step
            shown = f"{ev.rate * a.sample_rate / 1000:.2f} kbps" if layout else f"{ev.rate:.3f} bpp"
            line = f"round {ev.round} psnr {ev.psnr:.2f} dB rate {shown} beta {ev.beta:.2e}"
            bar.set_postfix_str(line)
            bar.refresh()
            if bar.disable and not a.quiet and not rank and ev.step % 50 == 1:  # logs of runs in the background
                print(f"step {ev.step}/{bar.total} {time.time() - t0:.0f} s {line}", flush=True)
    except StopIteration as stop:
        prior = stop.value
    bar.close()
    prior.info["train_seconds"] = round(time.time() - t0, 1)
    prior.info["device"] = str(dev)
    ck.unlink(missing_ok=True)
    if rank:  # every process holds the same prior; the first one writes it
        return 0
    prior.save(out)
    unit = "kbps" if layout else "bpp"
    print(f"wrote {out}: prior {prior.id[:12]} ({prior.n_params} weights, {prior.default_blocks} blocks at "
          f"{prior.rate:g} {unit}, mean-weight PSNR on training items {prior.info['train_psnr_mean_weights']} dB)")
    return 0


def _fit_config(a):
    """The preset, with `--perceptual` and `--shortlist` where the command has them and they are given."""
    from dataclasses import replace

    from .config import PRESETS, perceptual

    fit = PRESETS[a.preset]
    if getattr(a, "perceptual", False):
        fit = perceptual(fit)
    return replace(fit, shortlist=a.shortlist) if getattr(a, "shortlist", None) is not None else fit


def _progress(gen, desc: str, quiet: bool):
    """Drive an encode generator under a tqdm bar -> its return value."""
    from tqdm import tqdm

    bar = tqdm(unit="step", disable=True if quiet else None, desc=desc, delay=1.0)
    try:
        while True:
            ev = next(gen)
            bar.total = ev.total_steps
            bar.n = ev.step
            bar.set_postfix_str(f"{ev.phase} blocks {ev.blocks_done}/{ev.n_blocks} psnr {ev.psnr:.2f} dB")
            bar.refresh()
    except StopIteration as stop:
        return stop.value
    finally:
        bar.close()


def _encode_work(imgs: dict, clips: dict) -> int:
    """Network evaluations per fitting step of the largest batch (sets the thread count)."""
    from .patch_codec import MAX_UNITS

    px = sum(i.shape[0] * i.shape[1] for i in imgs.values())
    work = min(px, MAX_UNITS * 64 * 64)
    for x, sr in clips.values():
        work = max(work, min(int(x.shape[0] * x.shape[1] * 16000 / sr), 512 * 800))
    return work


def _rate_note(got: float, asked: float, unit: str, name) -> None:
    if got < 0.8 * asked:
        print(f"combiner: warning: {name}: coded at {got:.4g} {unit}, the most this prior reaches for it "
              f"({asked:g} {unit} asked)", file=sys.stderr)


def cmd_encode(a) -> int:
    from . import threads
    from .audio_io import is_audio_path, read_audio
    from .errors import MediaError
    from .media import check_writable, read_image, write_atomic

    check_common_options(a)
    inputs = [Path(p) for p in a.inputs]
    out = Path(a.output) if a.output else None
    if len(inputs) == 1 and inputs[0].is_dir():
        from .batch_encode import encode_folder

        return encode_folder(a, inputs[0], out)
    for p in inputs:
        if p.is_dir():
            raise CombinerError(f"{p}: is a folder (to encode a folder give it alone, with -o OUT_FOLDER)")
    if len(inputs) > 1 and (out is None or not out.is_dir()):
        raise CombinerError("several inputs need -o to name an existing folder")
    dests = []
    for p in inputs:
        d = (out / (p.stem + ".cmb")) if out is not None and out.is_dir() else (out or p.with_suffix(".cmb"))
        if d.resolve() in {q.resolve() for q in inputs}:
            raise CombinerError(f"output {d} would overwrite an input")
        dests.append(d)
    if len(set(dests)) != len(dests):
        raise CombinerError("two inputs would be written to the same output file")
    for d in dests:  # before any work: a bad output path is reported now, not after the encode
        check_writable(d, protect=inputs)
    imgs, clips = {}, {}
    for i, p in enumerate(inputs):
        if is_audio_path(p):
            x, sr, warns = read_audio(p)
            clips[i] = (x, sr)
        else:
            try:
                imgs[i], warns = read_image(p, keep_channels=True)
            except MediaError as e:
                try:  # an audio file with an unusual suffix
                    x, sr, warns = read_audio(p)
                    clips[i] = (x, sr)
                except MediaError:
                    raise e from None
        for wmsg in warns:
            print(f"combiner: warning: {wmsg}", file=sys.stderr)
    if imgs and a.bpp is None:
        raise CombinerError("images need a target rate: --bpp")
    if clips and a.kbps is None:
        raise CombinerError("audio needs a target rate: --kbps")
    threads.apply(a.threads, _encode_work(imgs, clips))
    dev = _device(a.device)
    t0 = time.time()
    results = encode_items(a, inputs, imgs, clips, dev, dests)
    for i, (data, line, rate, unit) in sorted(results.items()):
        write_atomic(dests[i], data, protect=inputs)
        journal_for(dests[i]).remove()
        print(f"{inputs[i]} -> {dests[i]}: {line}")
        _rate_note(rate, a.bpp if unit == "bpp" else a.kbps, unit, inputs[i].name)
    if not a.quiet:
        what = ", ".join(f"{n} {k}" for n, k in ((len(imgs), "image(s)"), (len(clips), "audio clip(s)")) if n)
        print(f"encoded {what} in {time.time() - t0:.1f} s on {dev}")
    return 0


def journal_for(dest: Path):
    """The journal that makes the encode writing `dest` resumable (engine/journal.py): DEST.journal, kept while
    the encode runs and after an interruption, removed once `dest` is written."""
    from .journal import Journal

    return Journal(Path(str(dest) + ".journal"))


def _journal(a, dest: Path, inputs):
    """The journal of the encode writing `dest` (checked writable; emptied first with --no-resume)."""
    from .media import check_writable

    journal = journal_for(dest)
    check_writable(journal.path, protect=inputs)
    if not getattr(a, "resume", True):
        journal.remove()
    return journal


def _journaled(gen, desc: str, quiet: bool, journal, name: str):
    """`_progress` of an encode that may keep a journal: say what it resumed, or what it kept when stopped."""
    try:
        out = _progress(gen, desc, quiet)
    except BaseException:
        if journal is not None and journal.records:
            print(f"combiner: {len(journal.records)} of {journal.n_batches} batches of {name} are kept in "
                  f"{journal.path}: the same command continues from there", file=sys.stderr)
        raise
    if journal is not None and journal.note:
        print(f"combiner: warning: {journal.note}", file=sys.stderr)
    if journal is not None and journal.restored:
        print(f"combiner: {name}: resumed, {journal.restored} of {journal.n_batches} batches taken from "
              f"{journal.path}", file=sys.stderr)
    return out


def encode_items(a, inputs, imgs: dict, clips: dict, dev, dests: list | None = None) -> dict:
    """Encode read images {i: (H, W, C)} and clips {i: (x, sr)} with the CLI's options -> {i: (file bytes,
    report line, achieved rate, unit)}. Warnings go to stderr. Shared by the single-process and folder encodes.
    With `dests` (the output of each input), a clip or a lone image longer than one encoder batch keeps a
    journal beside its output (`journal_for`), continues one an interrupted run of the same encode left there
    (unless --no-resume), and the caller removes it after writing the output."""
    from .codec import encode_batch
    from .patch_codec import uses_patches

    fit = _fit_config(a)
    forced = None
    if a.prior:
        from .prior import Prior

        forced = Prior.load(a.prior)
    imgs = dict(imgs)
    out = {}
    groups: dict = {}
    patched = []
    for i, img in imgs.items():
        if uses_patches(img.shape, forced, a.prior_dir):
            patched.append(i)
            continue
        if img.shape[2] != 3:
            from .patch_codec import to_rgb

            if img.shape[2] in (2, 4):
                print(f"combiner: warning: {inputs[i].name}: alpha channel dropped (this prior codes colour only)",
                      file=sys.stderr)
            imgs[i] = to_rgb(img)[0]
        groups.setdefault(imgs[i].shape, []).append(i)
    if patched:
        from .patch_codec import encode_image_batch
        from .restoration import Restoration

        journal = _journal(a, dests[patched[0]], inputs) if dests is not None and len(patched) == 1 else None
        gen = encode_image_batch([imgs[i] for i in patched], a.bpp, prior=forced, fit=fit, device=dev, seed=a.seed,
                                 prior_dirs=a.prior_dir, compile=a.compile, adaptive=not a.uniform,
                                 adapt=a.delta, journal=journal,
                                 **({} if a.delta_group is None else {"delta_group": a.delta_group}),
                                 **({"delta_top": False} if a.no_image_delta else {}),
                                 restore=Restoration(floors=a.floors, wiener=a.wiener))
        results = _journaled(gen, f"{len(patched)} image(s) by patches", a.quiet, journal, inputs[patched[0]].name)
        for i, r in zip(patched, results):
            for wmsg in r.warnings:
                print(f"combiner: warning: {wmsg}", file=sys.stderr)
            nb = r.unit_blocks
            bpp = 8.0 * len(r.data) / (imgs[i].shape[0] * imgs[i].shape[1])
            out[i] = (r.data, f"{len(r.data)} bytes, {bpp:.4f} bpp, PSNR {r.psnr:.2f} dB (prior {r.prior.name}, "
                              f"{len(nb)} patches, {nb.min()}-{nb.max()} blocks each"
                              + (f", network delta {r.header.delta_blocks} blocks" if r.header.delta_blocks else "")
                              + (f" over {len(r.header.group_deltas)} groups" if r.header.group_deltas else "")
                              + (f" (image level {r.header.top_delta[1]})" if r.header.top_delta[1] else "")
                              + ")", bpp, "bpp")
    for shape, ids in groups.items():
        gen = encode_batch([imgs[i] for i in ids], a.bpp, prior=forced, fit=fit, device=dev, seed=a.seed,
                           prior_dirs=a.prior_dir, compile=a.compile)
        results = _progress(gen, f"{len(ids)}x{shape[1]}x{shape[0]}", a.quiet)
        for i, r in zip(ids, results):
            out[i] = (r.data, f"{len(r.data)} bytes, {r.bpp:.4f} bpp, PSNR {r.psnr:.2f} dB "
                              f"(prior {r.prior.name}, {r.header.n_blocks} blocks)", r.bpp, "bpp")
    if clips:
        from .audio_codec import adapt_mode, encode_audio, plan_budget
        from .audio_gain import GAIN_STEP_DB
        from .prior import nearest

        adapt = adapt_mode(a.delta, a.try_delta)   # audio: a delta only when asked (no gain measured on speech)
        for i, (x, sr) in clips.items():
            chosen = forced or nearest("audio", 1, a.kbps, a.prior_dir)
            for wmsg in plan_budget(x, sr, a.kbps, chosen, a.seed, adapt is True, a.envelope,
                                    a.bands).warnings:   # said first
                print(f"combiner: warning: {inputs[i].name}: {wmsg}", file=sys.stderr)
            journal = _journal(a, dests[i], inputs) if dests is not None else None
            gen = encode_audio(x, sr, a.kbps, prior=chosen, fit=fit, device=dev, seed=a.seed,
                               prior_dirs=a.prior_dir, compile=a.compile,
                               adapt=adapt, envelope=a.envelope, bands=a.bands, journal=journal)
            r = _journaled(gen, inputs[i].name, a.quiet, journal, inputs[i].name)
            ub = r.unit_blocks
            out[i] = (r.data, f"{len(r.data)} bytes, {r.kbps:.3f} kbps, SNR {r.snr:.2f} dB, PSNR {r.psnr:.2f} dB "
                              f"(prior {r.prior.name}, {r.header.units} units, {ub.min()}-{ub.max()} blocks each, "
                              f"gain {r.header.gain * GAIN_STEP_DB:+.2f} dB"
                              + (f", network delta {r.header.delta_blocks} blocks" if r.header.delta_blocks else "")
                              + ")", r.kbps, "kbps")
    return out


def _delta_rows(hdr, what: str) -> list[tuple[str, str]]:
    """`combiner info` row of a kind-11/12 network delta (none without one)."""
    if not hdr.delta_blocks:
        return []
    from .hierarchy import SCALE_STEP

    if hdr.group_deltas:
        gr, gc = hdr.n_groups
        nb = [b for _, b in hdr.group_deltas]
        top = (f"an image-level delta ({hdr.top_delta[1]} blocks) under " if hdr.top_delta[1] else "")
        return [("delta", f"{hdr.delta_blocks} blocks: {top}a network delta for each of {gr}x{gc} groups of "
                          f"{hdr.delta_group}x{hdr.delta_group} patches ({min(nb)}-{max(nb)} blocks each), "
                          "coded first")]
    scales = "/".join(f"{c * SCALE_STEP:g}" for c in hdr.delta_scales)
    return [("delta", f"{hdr.delta_blocks} blocks: the {what}'s network delta, coded first (layer scales 2^-{scales})")]


def _read_cmb(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CombinerError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CombinerError(f"{path}: is a folder") from None
    except OSError as e:
        raise CombinerError(f"{path}: cannot read ({e.strerror})") from None


def cmd_decode(a) -> int:
    from . import container, limits
    from .errors import CmbFormatError
    from .media import check_image_output, check_writable, encode_image_file, write_atomic

    check_common_options(a)
    src = Path(a.input)
    data = _read_cmb(src)
    try:
        hdr = container.read_header(data)
    except CmbFormatError as e:
        raise CombinerError(f"{src}: {e}") from None
    # Everything that can be checked from the header is checked before the (possibly long) decode.
    default = ".wav" if hdr.modality == "audio" else ".png"
    out = Path(a.output) if a.output else src.with_suffix(default)
    try:
        limits.check_header(hdr)
    except limits.DecodeLimitError as e:
        raise CombinerError(f"{src}: {e}") from None
    if hdr.modality == "audio":
        from .audio_io import check_audio_output

        check_audio_output(hdr.shape[1], hdr.shape[2], out.suffix)
    else:
        check_image_output(hdr.shape, out.suffix)
    check_writable(out, protect=[src])
    try:
        if hdr.modality == "audio":
            from .audio_codec import decode_audio_full
            from .audio_io import audio_file_bytes

            y, sr, hdr, _ = decode_audio_full(data, a.prior_dir, _device(a.device))
            payload = audio_file_bytes(y, sr, out.suffix)
        elif hdr.patch:
            from .patch_codec import decode_image_full

            img, hdr, _ = decode_image_full(data, a.prior_dir, _device(a.device))
            payload = encode_image_file(img, out.suffix)
        else:
            from .codec import decode_full

            img, hdr, _ = decode_full(data, a.prior_dir, _device(a.device))
            payload = encode_image_file(img, out.suffix)
    except CmbFormatError as e:
        raise CombinerError(f"{src}: {e}") from None
    write_atomic(out, payload, protect=[src])
    if hdr.modality == "audio":
        n, c, sr = hdr.shape
        print(f"{src} -> {out}: {n / sr:.3f} s of audio, {c} channel(s) at {sr} Hz")
    else:
        print(f"{src} -> {out}: {hdr.shape[1]}x{hdr.shape[0]} image")
    return 0


def cmd_info(a) -> int:
    from . import container
    from .errors import CmbFormatError, PriorError
    from .prior import find_by_short_id

    src = Path(a.input)
    data = _read_cmb(src)
    try:
        hdr = container.read_header(data)   # the indices are not needed (nor unpacked)
    except CmbFormatError as e:
        raise CombinerError(f"{src}: {e}") from None
    unit = "kbps" if hdr.modality == "audio" else "bpp"
    try:
        prior = find_by_short_id(hdr.prior_id, a.prior_dir)
        pname = f"{prior.name} (id {prior.id[:12]}, trained at {prior.rate:g} {unit})"
    except PriorError:
        pname = f"{hdr.prior_id.hex()} (NOT INSTALLED: this file cannot be decoded here)"
    rows = [("file", str(src)), ("modality", hdr.modality)]
    if hdr.modality == "audio":
        n, c, sr = hdr.shape
        rows += [("samples", str(n)), ("duration", f"{n / sr:.3f} s"), ("channels", str(c)),
                 ("sample rate", f"{sr} Hz"), ("bytes", str(len(data))),
                 ("kbps", f"{8 * len(data) / (n / sr) / 1000:.3f}")]
    else:
        h, w, c = hdr.shape
        rows += [("shape", f"{w}x{h}, {c} channel(s)"), ("bytes", str(len(data))),
                 ("bpp", f"{8 * len(data) / (h * w):.4f}")]
    rows += [("header bytes", str(len(container.header_bytes(hdr)) + container.CRC_BYTES)),
             ("prior", pname), ("seed", str(hdr.seed)), ("kappa", f"{hdr.kappa} bits")]
    if hdr.patch:
        ub = hdr.unit_blocks
        rows.append(("patches", f"{hdr.units} of {hdr.patch}x{hdr.patch} (one INR each)"))
        rows.append(("blocks", f"{min(ub)}-{max(ub)} per patch in {len(hdr.class_blocks)} class(es), "
                               f"{hdr.n_indices} in all"))
        rows += _delta_rows(hdr, "image")
        if hdr.floors is not None:
            from .image_floors import summary as floor_summary

            rows.append(("spectral floors", floor_summary(hdr.floors)))
        if hdr.wiener is not None:
            from .image_wiener import summary as wiener_summary

            rows.append(("Wiener filters", wiener_summary(hdr.wiener)))
        if hdr.alpha:
            rows.append(("alpha", f"{len(hdr.alpha)} bytes, lossless"))
    elif hdr.modality == "audio" and hdr.gain is not None:
        from .audio_gain import GAIN_STEP_DB, REF_DBFS

        ub = hdr.unit_blocks
        silent = sum(1 for b in ub if b == 0)
        rows.append(("units", f"{hdr.units} (chunk INRs over all channels), {silent} silent"))
        rows.append(("blocks", f"{min(ub)}-{max(ub)} per unit in {len(hdr.class_blocks)} class(es), "
                               f"{hdr.n_indices} in all"))
        rows.append(("gain", f"{hdr.gain * GAIN_STEP_DB:+.2f} dB (the clip was brought to {REF_DBFS:g} dBFS)"))
        if hdr.envelope is not None:
            from .audio_envelope import level_range

            lv = level_range(hdr.envelope, ub)
            rows.append(("envelope", f"one level per sounding unit, {lv[0]:+g} to {lv[1]:+g} dB re the clip level"
                                     if lv else "no sounding units"))
        if hdr.bands is not None:
            from .audio_bands import summary

            rows.append(("band gains", summary(hdr.bands, hdr.band_set, hdr.shape[1])))
        rows += _delta_rows(hdr, "clip")
    elif hdr.modality == "audio":
        rows.append(("units", f"{hdr.units} (chunk INRs over all channels)"))
        rows.append(("blocks", f"{hdr.n_blocks} per unit, {hdr.n_indices} in all"))
    else:
        rows.append(("blocks", str(hdr.n_blocks)))
    width = max(14, max(len(k) for k, _ in rows) + 2)
    for k, v in rows:
        print(f"{k + ':':<{width}}{v}")
    return 0


def cmd_priors(a) -> int:
    from .prior import available

    for p in sorted(available(a.prior_dir), key=lambda p: (p.modality, p.rate)):
        unit = "kbps" if p.modality == "audio" else "bpp "
        coded = "values " if p.latent is not None and p.latent.shared else "weights"   # shared INR: latents only
        print(f"{p.id[:12]}  {p.modality:<6} {p.rate:>5g} {unit} {p.n_params:>6} {coded}  "
              f"{p.default_blocks:>4} blocks  width {p.inr.width} depth {p.inr.depth}"
              f"{'  latents ' + 'x'.join(map(str, p.latent.levels)) if p.latent else ''}  {p.name}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="combiner", description="COMBINER: compression with Bayesian implicit "
                                "neural representations.")
    sub = p.add_subparsers(dest="cmd", required=True)

    lp = sub.add_parser("learn-prior", help="learn a prior on a training set (coordinate descent)")
    lp.add_argument("--data", required=True, help=".npz with an 'images' array, a folder of same-size images, "
                    "or (with --kbps) a folder of audio files")
    lp.add_argument("--rate", type=float, help="image prior: target rate in bits per pixel")
    lp.add_argument("--kbps", type=float, help="audio prior: target rate in kbit/s at --sample-rate")
    lp.add_argument("--chunk", type=int, default=800, help="audio: samples per INR chunk")
    lp.add_argument("--level-normalise", action=argparse.BooleanOptionalAction, default=True,
                    help="audio: bring every training file to the codec's reference level first (as the "
                    "encoder does with every clip)")
    lp.add_argument("--points", type=float, default=1.0,
                    help="fraction of each item's pixels (samples) every step measures, a fresh random subset per "
                         "step: cheaper steps, for more steps or more items in the same time (default 1)")
    lp.add_argument("--envelope", action="store_true",
                    help="audio: fit every chunk at the reference level with its error weighed by the chunk's level, "
                    "as the encoder's chunk envelope does (engine/audio_envelope.py)")
    lp.add_argument("--sample-rate", type=int, default=16000, help="audio: the prior's sample rate")
    lp.add_argument("--patch", type=int, default=0, help="image patch prior: learn on seeded random PATCHxPATCH "
                    "crops of a folder of photos of any size (e.g. 64)")
    lp.add_argument("-o", "--out", required=True, help="prior file to write (.safetensors)")
    lp.add_argument("--items", type=int, default=512, help="training items (from the start, or for audio from "
                    "a seeded shuffle of all chunks; 0 = all)")
    lp.add_argument("--skip", type=int, default=0, help="skip this many items at the start of the data")
    lp.add_argument("--init-prior", help="continue from this prior instead of from scratch (same architecture; a "
                    "shared-network latent prior may grow: wider, more latent levels, more Fourier frequencies)")
    lp.add_argument("--batch", type=int, default=0, help="items per batched step (0 = all at once)")
    lp.add_argument("--width", type=int, default=32)
    lp.add_argument("--depth", type=int, default=3)
    lp.add_argument("--freqs", type=int, default=5)
    lp.add_argument("--max-freq", type=float, default=16.0)
    lp.add_argument("--first-steps", type=int, default=400)
    lp.add_argument("--round-steps", type=int, default=200)
    lp.add_argument("--rounds", type=int, default=12)
    lp.add_argument("--seed", type=int, default=0)
    lp.add_argument("--reparam", action="store_true", help="learn RECOMBINER's linear reparameterisation "
                    "of the weights with the prior")
    lp.add_argument("--name", default=None, help="a name stored in the manifest")
    lp.add_argument("--latent", default=None, metavar="G1,G2,...",
                    help="positional latent grids: sides per patch (e.g. 32,16,8,4,2) for patch priors, cells per "
                    "chunk (e.g. 400,200,100,50,25) for audio, stitched over the image or the channel and learned "
                    "with a small upsampler")
    lp.add_argument("--latent-channels", type=int, default=1, help="values per latent grid cell")
    lp.add_argument("--shared-inr", action="store_true", help="latent priors: one INR for every patch, learned "
                    "into the prior; a patch codes its latent grids only")
    lp.add_argument("--crop-delta", action="store_true",
                    help="with --shared-inr: every training crop also fits a network delta of its own under the "
                    "rate, as the encoder gives every group of TILE x TILE patches (learn the prior for what the "
                    "delta leaves to it)")
    lp.add_argument("--shared-warmup", type=int, default=0, metavar="STEPS",
                    help="hold the shared networks (upsampler, shared INR, reparameterisation) still for the first "
                         "STEPS posterior steps, while a warm start refits its posteriors from the prior mean")
    lp.add_argument("--shared-lr", type=float, default=1e-3, help="latent priors: Adam learning rate of the "
                    "parameters all patches share (upsampler, shared INR)")
    lp.add_argument("--beta-init", type=float, default=None, help="initial rate weight (default: from the rate)")
    lp.add_argument("--warmup", type=int, default=None,
                    help="steps at --beta-init before the rate controller starts (latent priors: the whole first "
                    "round, so the grids learn to carry content before the rate squeezes them)")
    lp.add_argument("--tile", type=int, default=2, help="latent priors learn on crops of TILE x TILE patches (audio: "
                    "runs of TILE chunks)")
    lp.add_argument("--checkpoint", default=None, help="checkpoint file (default: OUT.ckpt)")
    lp.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    lp.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                    help="torch.compile the network (about 2x faster; falls back to eager)")
    lp.add_argument("--threads", type=int, default=0)
    lp.add_argument("--device", choices=["cpu", "cuda", "auto"], default="auto")
    lp.add_argument("-q", "--quiet", action="store_true")
    lp.set_defaults(func=cmd_learn_prior)

    def common(sp):
        sp.add_argument("--prior-dir", action="append", default=None, metavar="PATH",
                        help="extra folder (or file) of priors; may repeat. Also $COMBINER_PRIORS")

    en = sub.add_parser("encode", help="compress images or audio to .cmb files (same-size images: one batch)")
    en.add_argument("inputs", nargs="+", metavar="IN")
    en.add_argument("--bpp", type=float, help="images: target rate in bits per pixel (file bytes)")
    en.add_argument("--kbps", type=float, help="audio: target rate in kbit/s (file bytes over duration)")
    en.add_argument("-o", "--output", help="output file, or a folder for several inputs (default IN.cmb)")
    en.add_argument("--preset", choices=["fast", "default", "best"], default="default")
    en.add_argument("--seed", type=int, default=0, help="shared candidate seed written to the file")
    add_shortlist_option(en)
    en.add_argument("--uniform", action="store_true", help="patch coding: the same block count for every patch "
                    "(default: allocate blocks by content)")
    en.add_argument("--delta", action=argparse.BooleanOptionalAction, default=None,
                    help="shared-network latent priors: code a network delta for the whole image or clip (kind 11 or "
                    "12) or not (--no-delta: kind 9 or 10). Default: images yes, audio no (it measured no gain "
                    "on speech)")
    en.add_argument("--try-delta", action="store_true",
                    help="audio: code each clip without and with a clip-level network delta and keep the file "
                    "that decodes closer to the input (up to twice the encode time)")
    en.add_argument("--delta-group", type=int, default=None, metavar="N",
                    help="images: code a network delta for each group of NxN patches (kind 15) instead of one for "
                    "the whole image; 0: one for the image (kind 11)")
    en.add_argument("--no-image-delta", action="store_true",
                    help="images with group deltas: no image-level delta under them (two levels of network "
                    "weights instead of three; an ablation)")
    en.add_argument("--envelope", action=argparse.BooleanOptionalAction, default=True,
                    help="audio: store one level per chunk and fit every chunk at the reference level (kind 13 or "
                    "14; default) or not (--no-envelope: kind 10 or 12)")
    en.add_argument("--bands", action=argparse.BooleanOptionalAction, default=True,
                    help="audio: choose a gain per band of every few chunks of the decode, against the original "
                    "(kind 5; default; 0.1 to 0.3 kbps), or not (--no-bands)")
    en.add_argument("--floors", action=argparse.BooleanOptionalAction, default=True,
                    help="images with group deltas: choose a noise floor and a gain per colour plane and frequency "
                    "band of the decode, against the original (kind 15, flag bit 1; default; 18 bytes), or not "
                    "(--no-floors)")
    en.add_argument("--wiener", action=argparse.BooleanOptionalAction, default=True,
                    help="images with group deltas: after the floors, fit a small filter to each class of 4x4 "
                    "blocks of the decode (by activity and direction), against the original (kind 15, flag bit 2; "
                    "default; about 0.002 bpp), or not (--no-wiener)")
    en.add_argument("--perceptual", action="store_true",
                    help="audio: shape the coding noise under the speech's formants, as speech codecs do (higher "
                    "PESQ and STOI, lower SNR; the file decodes as any other)")
    en.add_argument("--compile", action="store_true",
                    help="torch.compile the network: slower start, faster steps (large batches)")
    en.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                    help="audio longer than one batch (about 25 s of speech) and images larger than one (about "
                    "1.5 megapixels) keep OUT.journal while they encode: after an interruption the same command "
                    "continues from the batches done (default); --no-resume starts over")
    en.add_argument("--prior", help="use this prior file instead of the installed prior nearest in rate")
    en.add_argument("--device", choices=["cpu", "cuda", "auto"], default="auto")
    en.add_argument("--threads", type=int, default=0, help="CPU threads (0: chosen from the work; small "
                    "batches get one)")
    en.add_argument("--max-pixels", type=float, default=None, metavar="N",
                    help="refuse input images above N pixels (default 178,956,970 or $COMBINER_MAX_PIXELS; 0: no limit)")
    en.add_argument("--skip-existing", action=argparse.BooleanOptionalAction, default=True,
                    help="folder encode: skip inputs whose .cmb already exists and reads back (default on)")
    en.add_argument("-q", "--quiet", action="store_true")
    common(en)
    en.set_defaults(func=cmd_encode)

    de = sub.add_parser("decode", help="decompress a .cmb file to an image or audio file")
    de.add_argument("input", metavar="IN.cmb")
    de.add_argument("-o", "--output", help="output file (default IN.png / IN.wav); format from the suffix "
                    "(images: png, jpg, bmp, tif, webp, ppm; audio: 16-bit wav, flac, ogg)")
    de.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu")
    de.add_argument("--max-pixels", type=float, default=None, metavar="N",
                    help="refuse to decode images above N pixels (default 178,956,970 or $COMBINER_MAX_PIXELS; "
                    "0: no limit)")
    de.add_argument("--max-seconds", type=float, default=None, metavar="S",
                    help="refuse to decode audio above S seconds, counted as 48 kHz stereo (default 1800 or "
                    "$COMBINER_MAX_SECONDS; 0: no limit)")
    common(de)
    de.set_defaults(func=cmd_decode)

    info = sub.add_parser("info", help="show the header of a .cmb file")
    info.add_argument("input", metavar="IN.cmb")
    common(info)
    info.set_defaults(func=cmd_info)

    pr = sub.add_parser("priors", help="list the installed priors")
    common(pr)
    pr.set_defaults(func=cmd_priors)
    return p


def main(argv: list[str] | None = None) -> int:
    from . import limits

    a = build_parser().parse_args(argv)
    old_term = None
    try:
        old_term = signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, AttributeError):  # not the main thread
        pass
    try:
        check_common_options(a)
        mp, ms = getattr(a, "max_pixels", None), getattr(a, "max_seconds", None)
        with limits.override(max_pixels=None if mp is None else int(mp), max_seconds=ms):
            return a.func(a)
    except CombinerError as e:
        return _fail(str(e))
    except KeyboardInterrupt as e:
        term = isinstance(e, _Terminated)
        _fail("terminated" if term else "interrupted")
        return 128 + (signal.SIGTERM if term else signal.SIGINT)
    except MemoryError:
        return _fail("out of memory")
    except RecursionError:
        return _fail("internal error: recursion too deep")
    except BrokenPipeError:   # the engine runs no subprocesses: the pipe is our standard output or error
        return _reader_gone()
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)


if __name__ == "__main__":
    sys.exit(main())
