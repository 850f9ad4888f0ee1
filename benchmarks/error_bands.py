"""Where a speech decode's error lies: by frequency band and by chunk loudness, for one or more decodes of a clip.

    python benchmarks/error_bands.py ORIGINAL.wav DECODED.wav [DECODED2.wav ...]

Per decode: the SNR; per band (Welch spectra, 512-sample segments) the signal's and the error's power in dB
and the band SNR; per third of the 800-sample chunks ranked by the original's level, the mean chunk SNR and
that third's share of the total error. Every decode must have the original's length and sample rate.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import scipy.signal as ss

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import metrics  # noqa: E402
from engine.audio_io import read_audio  # noqa: E402

BANDS = (0, 250, 500, 1000, 2000, 4000, 8000)   # Hz; the last band ends at Nyquist
CHUNK = 800                                     # samples: the speech priors' chunk


def db(p: float) -> float:
    return float(10 * np.log10(max(p, 1e-30)))


def band_table(x: np.ndarray, errors: dict[str, np.ndarray], sr: int) -> list[str]:
    f, px = ss.welch(x, sr, nperseg=512)
    pe = {k: ss.welch(e, sr, nperseg=512)[1] for k, e in errors.items()}
    edges = [b for b in BANDS if b < sr / 2] + [sr / 2 + 1]
    head = "| band Hz | signal dB | " + " | ".join(f"error {k} dB | band SNR {k}" for k in errors) + " |"
    out = [head, "|---" * (2 + 2 * len(errors)) + "|"]
    for lo, hi in zip(edges, edges[1:]):
        m = (f >= lo) & (f < hi)
        s = db(px[m].sum())
        cells = [f"{db(p[m].sum()):.1f} | {s - db(p[m].sum()):.1f}" for p in pe.values()]
        out.append(f"| {lo:g}–{min(hi, sr / 2):g} | {s:.1f} | " + " | ".join(cells) + " |")
    return out


def loudness_table(x: np.ndarray, errors: dict[str, np.ndarray]) -> list[str]:
    n = x.shape[0] // CHUNK
    c = x[: n * CHUNK].reshape(n, CHUNK)
    order = np.argsort((c ** 2).mean(1))
    thirds = np.array_split(order, 3)
    out = ["| chunks | level dBFS | " + " | ".join(f"chunk SNR {k} | error share {k}" for k in errors) + " |",
           "|---" * (2 + 2 * len(errors)) + "|"]
    sq = [e[: n * CHUNK].reshape(n, CHUNK) ** 2 for e in errors.values()]   # (n, CHUNK) per decode
    for name, idx in zip(("quietest third", "middle third", "loudest third"), thirds):
        cells = []
        for ce in sq:
            snr = np.mean([db((c[i] ** 2).sum()) - db(ce[i].sum()) for i in idx])
            cells.append(f"{snr:.2f} | {ce[idx].sum() / ce.sum():.2f}")
        out.append(f"| {name} | {db((c[idx] ** 2).mean()):.1f} | " + " | ".join(cells) + " |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("original", type=Path)
    ap.add_argument("decoded", type=Path, nargs="+")
    a = ap.parse_args()
    x, sr, _ = read_audio(a.original)
    x = x[:, 0].astype(np.float64)
    errors = {}
    for f in a.decoded:
        y, ysr, _ = read_audio(f)
        if ysr != sr or y.shape[0] != x.shape[0]:
            raise SystemExit(f"{f.name}: {y.shape[0]} samples at {ysr} Hz, the original has {x.shape[0]} at {sr}")
        errors[f.stem] = x - y[:, 0].astype(np.float64)
    for k, e in errors.items():
        print(f"{k}: SNR {metrics.snr(x, x - e):.2f} dB")
    print("\n".join(["", *band_table(x, errors, sr), "", *loudness_table(x, errors)]))


if __name__ == "__main__":
    main()
