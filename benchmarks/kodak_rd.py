"""Rate-distortion and speed benchmark on Kodak (evaluation only; not a test: it prints figures).

    python benchmarks/kodak_rd.py --data ../shared/data/images/kodak --bpp 0.3 0.5 --preset fast --out bench_out/kodak.md

Every image is encoded by patches at each target rate (all its patches in one batch), written to bytes,
decoded from those bytes alone, and scored: bpp from the real file size (header included) and PSNR of the
decoded 8-bit image. JPEG, WebP and AVIF (Pillow) are measured in the same run at the quality whose file is
nearest each .cmb file's size. `--ablate` also encodes with the same block count for every patch.
"""
from __future__ import annotations

import argparse
import io
import json
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from engine.codec import run  # noqa: E402
from engine.media import read_image  # noqa: E402
from engine.patch_codec import decode_image, encode_image_batch  # noqa: E402
from engine.prior import Prior  # noqa: E402
from engine.signals import psnr_uint8  # noqa: E402

ANCHORS = {
    "RECOMBINER": [(0.074, 26.16), (0.130, 27.65), (0.178, 28.59), (0.316, 30.44), (0.488, 31.95), (0.972, 34.54)],
    "BPG444": [(0.3, 31.00), (0.5, 33.32)],
    "COIN++": [(0.3, 26.41)],
}


def classic_at_size(img: np.ndarray, fmt: str, target_bytes: int) -> tuple[int, float]:
    """(bytes, PSNR) of the Pillow file whose size is nearest target_bytes, over qualities 1..100
    (bisection on quality, then the neighbours)."""
    def enc(q: int) -> tuple[int, bytes]:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format=fmt, quality=q)
        return buf.tell(), buf.getvalue()
    lo, hi = 1, 100
    while hi - lo > 1:  # size grows with quality (nearly monotone)
        mid = (lo + hi) // 2
        if enc(mid)[0] <= target_bytes:
            lo = mid
        else:
            hi = mid
    best = min((enc(q) for q in {max(1, lo - 1), lo, hi, min(100, hi + 1)}), key=lambda t: abs(t[0] - target_bytes))
    dec = np.asarray(Image.open(io.BytesIO(best[1])).convert("RGB"))
    return best[0], psnr_uint8(img, dec)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="folder of Kodak PNGs")
    ap.add_argument("-n", type=int, default=24, help="first N images")
    ap.add_argument("--crop", type=int, default=0, help="centre-crop to this square side (quick runs)")
    ap.add_argument("--bpp", type=float, nargs="+", required=True)
    ap.add_argument("--preset", choices=["fast", "default", "best"], default="fast")
    ap.add_argument("--prior", action="append", default=None, help="use this patch prior (repeat: one per --bpp)")
    ap.add_argument("--prior-dir", action="append", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--batch", type=int, default=1, help="images encoded together")
    ap.add_argument("--ablate", action="store_true", help="also encode with uniform block allocation")
    ap.add_argument("--no-classic", action="store_true")
    ap.add_argument("--out", default=None, help="write a markdown report here")
    ap.add_argument("--json", default=None, help="append one JSON line per image and rate here")
    a = ap.parse_args()

    from engine.cli import _fit_config
    fit = _fit_config(a)
    files = sorted(p for p in Path(a.data).iterdir() if p.suffix.lower() == ".png")[: a.n]
    imgs = []
    for f in files:
        im = read_image(f)[0]
        if a.crop:
            h, w = im.shape[:2]
            y, x = (h - a.crop) // 2, (w - a.crop) // 2
            im = np.ascontiguousarray(im[y:y + a.crop, x:x + a.crop])
        imgs.append(im)
    priors = [Prior.load(p) for p in a.prior] if a.prior else None
    modes = [True, False] if a.ablate else [True]
    rows = []
    for ri, r in enumerate(a.bpp):
        pr = priors[ri] if priors else None
        for adaptive in modes:
            per = []
            enc_s = 0.0
            for s in range(0, len(imgs), a.batch):
                part = imgs[s:s + a.batch]
                t0 = time.time()
                res = run(encode_image_batch(part, r, prior=pr, fit=fit, device=a.device, compile=a.compile,
                                             prior_dirs=a.prior_dir, adaptive=adaptive))
                enc = time.time() - t0
                enc_s += enc
                for k, (im, e) in enumerate(zip(part, res)):
                    t1 = time.time()
                    dec = decode_image(e.data, prior_dirs=a.prior_dir or ([str(Path(a.prior[ri]).parent)] if a.prior else None))
                    dec_s = time.time() - t1
                    assert np.array_equal(dec, e.reconstruction)
                    item = {"image": files[s + k].name, "target_bpp": r, "adaptive": adaptive, "prior": e.prior.name,
                            "bytes": len(e.data), "bpp": 8 * len(e.data) / (im.shape[0] * im.shape[1]),
                            "psnr": psnr_uint8(im, dec), "encode_s": enc / len(part), "decode_s": dec_s,
                            "blocks_min": int(e.unit_blocks.min()), "blocks_max": int(e.unit_blocks.max())}
                    if not a.no_classic and adaptive:
                        for fmt in ("JPEG", "WEBP", "AVIF"):
                            nb, ps = classic_at_size(im, fmt, len(e.data))
                            item[fmt] = {"bpp": 8 * nb / (im.shape[0] * im.shape[1]), "psnr": ps}
                    per.append(item)
                    print(json.dumps(item), flush=True)
                    if a.json:
                        with open(a.json, "a") as fh:
                            fh.write(json.dumps(item) + "\n")
            row = {"target_bpp": r, "adaptive": adaptive, "prior": per[0]["prior"],
                   "bpp": float(np.mean([p["bpp"] for p in per])), "psnr": float(np.mean([p["psnr"] for p in per])),
                   "encode_s": enc_s / len(per), "decode_s": float(np.mean([p["decode_s"] for p in per]))}
            if "JPEG" in per[0]:
                for fmt in ("JPEG", "WEBP", "AVIF"):
                    row[fmt] = {k: float(np.mean([p[fmt][k] for p in per])) for k in ("bpp", "psnr")}
            rows.append(row)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    side = f"centre {a.crop}x{a.crop} crops" if a.crop else "full images"
    lines = [f"Kodak, first {len(imgs)} images ({side}), preset {a.preset}, device {a.device}, batch {a.batch}, "
             f"torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} threads; peak RSS "
             f"{peak_mb:.0f} MB.\n",
             "| target bpp | allocation | prior | bpp (file bytes) | PSNR dB | JPEG bpp / dB | WebP bpp / dB | "
             "AVIF bpp / dB | encode s/img | decode s/img |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cl = [f"{r[f]['bpp']:.3f} / {r[f]['psnr']:.2f}" if f in r else "-" for f in ("JPEG", "WEBP", "AVIF")]
        lines.append(f"| {r['target_bpp']:g} | {'by content' if r['adaptive'] else 'uniform'} | {r['prior']} | "
                     f"{r['bpp']:.3f} | {r['psnr']:.2f} | {' | '.join(cl)} | {r['encode_s']:.1f} | "
                     f"{r['decode_s']:.3f} |")
    lines.append("\nPublished anchors on Kodak (bpp, dB): " + "; ".join(
        f"{k} " + " ".join(f"({b}, {p})" for b, p in v) for k, v in ANCHORS.items()))
    text = "\n".join(lines)
    print(text)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
