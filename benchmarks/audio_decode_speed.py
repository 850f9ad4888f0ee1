"""Decoder speed on long clips without a long encode: seconds per minute of audio and peak memory.

    python benchmarks/audio_decode_speed.py --minutes 10 --kbps 12 --prior priors/speech16k-latent-12kbps.safetensors

Writes a valid kind-5 file with the envelope and the band gains the encoder would choose at that rate (kind 13
with `--no-bands`, kind 10 with both `--no-bands --no-envelope`) for a clip of `--minutes` at `--kbps` (every unit
gets the clip's mean block count; the indices, chunk levels and band codes are random: the receiver's work does not
depend on their values), then decodes it from its bytes
with `decode_audio_full`, as `combiner decode` does, and prints wall and CPU seconds per minute of audio and the
peak resident memory. Encoding the same length on this CPU takes hours (benchmarks/audio_long.py).
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import audio_bands, container  # noqa: E402
from engine.audio_codec import audio_header, block_budget, decode_audio_full  # noqa: E402
from engine.audio_envelope import ENV_CODES  # noqa: E402
from engine.prior import Prior  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--kbps", type=float, default=12.0)
    ap.add_argument("--prior", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-envelope", action="store_true", help="no chunk envelope")
    ap.add_argument("--no-bands", action="store_true", help="no band gains")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    prior = Prior.load(a.prior)
    sr = prior.audio.sample_rate
    n = int(a.minutes * 60 * sr)
    env = not a.no_envelope
    band_set = None if a.no_bands else audio_bands.set_for(a.kbps)
    bud = block_budget(a.kbps, n, 1, sr, prior, envelope=env, band_set=band_set)
    per = max(1, min(prior.n_params, bud.total // bud.units))
    rng = np.random.default_rng(0)
    levels = rng.integers(0, ENV_CODES, bud.units) if env else None
    bands = None
    if band_set is not None:
        bs = audio_bands.SETS[band_set]
        bands = rng.integers(0, len(bs.gains), bs.n_codes(bud.units, 1))
    hdr = audio_header(n, 1, sr, prior, 0, [per], [0] * bud.units, 0, envelope=levels, bands=bands,
                       band_set=band_set or 0)
    idx = rng.integers(0, 2 ** prior.kappa, per * bud.units)
    data = container.write(hdr, idx)
    c0, t0 = time.process_time(), time.perf_counter()
    y, _, _, _ = decode_audio_full(data, [a.prior.parent], a.device)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    mins = n / sr / 60
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{prior.name}: {mins:g} min, {bud.units} units x {per} blocks, {8 * len(data) / (n / sr) / 1000:.2f} kbps, "
          f"{a.threads} thread(s), {a.device}, {'envelope' if env else 'no envelope'}, "
          f"{'no band gains' if band_set is None else f'band-gain set {band_set}'}")
    print(f"decode {wall:.2f} s wall, {cpu:.2f} s CPU: {wall / mins:.2f} s wall per minute of audio; "
          f"peak RSS {peak:.0f} MB; output {y.shape}")


if __name__ == "__main__":
    main()
