"""Rate-distortion and speed benchmark on CIFAR-10 test images (not a test: it prints figures).

    python benchmarks/cifar_rd.py --data ../shared/data/images/cifar10/test.npz -n 100 --out bench_out/cifar.md

For every installed 3-channel image prior (or the --bpp list) it encodes the images as one batch, writes each
file's bytes, decodes every file from its bytes alone, and reports mean bpp from the real file size and mean
PSNR of the decoded 8-bit image. JPEG, WebP and AVIF (Pillow) are measured in the same run at the quality whose
file size is nearest each .cmb file's size.

`--prior FILE` codes with that prior instead of the nearest installed one (repeat: one per --bpp). A patch
prior (e.g. a latent-grid prior learned with `learn-prior --patch 32`) goes through the patch codec, with the
image's network delta where the prior allows it (`--no-delta` to leave it out).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.kodak_rd import classic_at_size  # noqa: E402
from benchmarks.fit_options import add_fit_option, fit_overrides  # noqa: E402
from engine.cli import _fit_config, add_shortlist_option  # noqa: E402
from engine.codec import decode, encode_batch, run  # noqa: E402
from engine.patch_codec import decode_image, encode_image_batch  # noqa: E402
from engine.prior import Prior, available  # noqa: E402
from engine.signals import psnr_uint8  # noqa: E402

ANCHORS = {
    "RECOMBINER": [(0.297, 23.59), (0.719, 27.22), (0.938, 28.51), (1.531, 30.91), (1.922, 32.17), (3.344, 35.73)],
    "COMBINER (approx.)": [(0.91, 25.5), (1.39, 28.2), (2.28, 31.1)],
    "BPG": [(1.0, 27.11), (1.875, 31.97)],
}


def encode_with(imgs: np.ndarray, rate: float, prior: Prior | None, a, fit):
    """-> (encoded results, decoded images, encode s, decode ms per image). The decoder reads each file's bytes
    alone and must give the encoder's own reconstruction. A patch prior goes through the patch codec."""
    dirs = sorted({str(Path(p).parent) for p in a.prior}) if a.prior else None   # --prior files decode too
    if prior is not None and prior.patch:
        job = encode_image_batch(list(imgs), rate, prior=prior, fit=fit, device=a.device, compile=a.compile,
                                 adapt=False if a.no_delta else None)
        dec = lambda data: decode_image(data, prior_dirs=dirs)  # noqa: E731
    else:
        job = encode_batch(list(imgs), rate, prior=prior, fit=fit, device=a.device, compile=a.compile)
        dec = lambda data: decode(data, prior_dirs=dirs)  # noqa: E731
    t0 = time.time()
    res = run(job)
    enc_s = time.time() - t0
    t1 = time.time()
    decs = [dec(e.data) for e in res]
    dec_ms = (time.time() - t1) / len(res) * 1000
    assert all(np.array_equal(d, e.reconstruction) for d, e in zip(decs, res))
    return res, decs, enc_s, dec_ms


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("-n", type=int, default=100)
    ap.add_argument("--bpp", type=float, nargs="*", help="target rates (default: each prior's own rate)")
    ap.add_argument("--preset", choices=["fast", "default", "best"], default="default")
    add_shortlist_option(ap)
    add_fit_option(ap)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compile", action="store_true", help="torch.compile the networks")
    ap.add_argument("--prior", action="append", default=None, help="code with this prior file (repeat: one per --bpp)")
    ap.add_argument("--no-delta", action="store_true", help="patch priors: no image-level network delta")
    ap.add_argument("--json", default=None, help="append one JSON line per rate here")
    ap.add_argument("--timing", action="store_true", help="also time 1 and 64 images at about 1 bpp")
    ap.add_argument("--out", default=None, help="write a markdown report here")
    a = ap.parse_args()

    fit = fit_overrides(_fit_config(a), a.fit)
    with np.load(a.data) as z:
        allimg = z["images"]
    pick = np.linspace(0, len(allimg) - 1, a.n).round().astype(int)  # the file is sorted by class
    imgs = allimg[pick]
    priors = sorted([p for p in available() if p.modality == "image" and p.inr.out_dim == 3 and not p.patch],
                    key=lambda p: p.rate)
    rates = a.bpp or [p.rate for p in priors]
    given = [Prior.load(p) for p in a.prior] if a.prior else []
    rows, lines = [], []
    if given and len(given) not in (1, len(rates)):
        ap.error("give one --prior, or one per --bpp")
    for k, r in enumerate(rates):
        chosen = given[k if len(given) > 1 else 0] if given else None
        res, decs, enc_s, dec_ms = encode_with(imgs, r, chosen, a, fit)
        sizes = np.array([len(e.data) for e in res])
        psnr = np.array([psnr_uint8(i, d) for i, d in zip(imgs, decs)])
        bpp = sizes * 8 / (32 * 32)
        h = res[0].header
        row = {"target_bpp": r, "prior": res[0].prior.name, "prior_id": res[0].prior.id,
               "blocks": float(np.mean([e.header.n_indices for e in res])),
               "delta_blocks": float(np.mean([e.header.delta_blocks for e in res])) if h.patch else 0.0,
               "bpp": float(bpp.mean()), "psnr": float(psnr.mean()), "encode_s_per_image": enc_s / len(imgs),
               "decode_ms_per_image": dec_ms}
        for fmt in ("JPEG", "WEBP", "AVIF"):
            try:
                got = [classic_at_size(i, fmt, int(s)) for i, s in zip(imgs, sizes)]
            except (KeyError, OSError, ValueError):
                continue
            row[fmt] = {"bpp": float(np.mean([g[0] for g in got]) * 8 / 1024),
                        "psnr": float(np.mean([g[1] for g in got]))}
        if a.json:
            with open(a.json, "a") as f:
                f.write(json.dumps(row) + "\n")
        rows.append(row)
        print(json.dumps(row), flush=True)

    timing = {}
    if a.timing:
        pr = min(priors, key=lambda p: abs(np.log(p.rate)))
        for n in (1, 64):
            t0 = time.time()
            run(encode_batch(list(imgs[:n]), 1.0, prior=pr, fit=fit, device=a.device, compile=a.compile and n > 1))
            timing[n] = (time.time() - t0) / n
            print(f"encode at ~1 bpp, batch {n}: {timing[n]:.2f} s/image", flush=True)

    lines.append(f"CIFAR-10 test, {len(imgs)} images (evenly spaced over the class-sorted file), preset "
                 f"{a.preset}, device {a.device}, torch {torch.__version__}, {platform.processor() or platform.machine()}"
                 f", {torch.get_num_threads()} threads.\n")
    lines.append("| target bpp | prior | blocks | COMBINER bpp (file bytes) | PSNR dB | JPEG bpp / dB | WebP bpp / dB | "
                 "AVIF bpp / dB | encode s/img (batch) | decode ms/img |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        cl = [f"{r[f]['bpp']:.3f} / {r[f]['psnr']:.2f}" if f in r else "-" for f in ("JPEG", "WEBP", "AVIF")]
        lines.append(f"| {r['target_bpp']:g} | {r['prior']} | {r['blocks']:g} | {r['bpp']:.3f} | {r['psnr']:.2f} | "
                     f"{' | '.join(cl)} | {r['encode_s_per_image']:.2f} | {r['decode_ms_per_image']:.1f} |")
    for k, v in timing.items():
        lines.append(f"\nEncode at about 1 bpp, batch of {k}: {v:.2f} s per image.")
    lines.append("\nPublished anchors (bpp, dB): " + "; ".join(
        f"{k} " + " ".join(f"({b}, {p})" for b, p in v) for k, v in ANCHORS.items()))
    text = "\n".join(lines)
    print(text)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
