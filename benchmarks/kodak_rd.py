"""Rate-distortion and speed benchmark on Kodak (evaluation only; not a test: it prints figures).

    python benchmarks/kodak_rd.py --data ../shared/data/images/kodak --bpp 0.3 0.5 --preset fast --out bench_out/kodak.md
    # on a GPU machine without the reference codecs, then the JPEG/WebP/AVIF columns here from its JSON:
    python benchmarks/kodak_rd.py --data DIR --bpp 0.3 --device cuda --batch 4 --no-classic --json k.jsonl
    python benchmarks/kodak_rd.py --data DIR --from-json k.jsonl --decode-dir CMB_DIR --preset fast --out k.md

Every image is encoded by patches at each target rate (all its patches in one batch), written to bytes,
decoded from those bytes alone, and scored: bpp from the real file size (header included) and PSNR of the
decoded 8-bit image, and its MS-SSIM (engine.metrics; "n/a" under 161 px a side). JPEG, WebP and AVIF
(Pillow) are measured in the same run at the quality whose file is nearest each .cmb file's size. `--ablate`
also encodes with the same block count for every patch.
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
from benchmarks.fit_options import add_fit_option, fit_overrides  # noqa: E402
from engine.cli import _fit_config, add_shortlist_option  # noqa: E402
from engine.codec import run  # noqa: E402
from engine.config import FitConfig  # noqa: E402
from engine.latent import macs_per_pixel  # noqa: E402
from engine.media import read_image  # noqa: E402
from engine.metrics import ms_ssim  # noqa: E402
from engine.patch_codec import decode_image, encode_image_batch  # noqa: E402
from engine.prior import Prior  # noqa: E402
from engine.restoration import Restoration  # noqa: E402
from engine.signals import psnr_uint8  # noqa: E402

ANCHORS = {
    "RECOMBINER": [(0.074, 26.16), (0.130, 27.65), (0.178, 28.59), (0.316, 30.44), (0.488, 31.95), (0.972, 34.54)],
    "BPG444": [(0.3, 31.00), (0.5, 33.32)],
    "COIN++": [(0.3, 26.41)],
}


def quality_bracket(img: np.ndarray, fmt: str, target_bytes: int):
    """Bisection on the Pillow codec's quality for a file of target_bytes (size grows with quality, nearly
    monotone) -> (enc, lo, hi): `enc(q)` the file's bytes at quality q (memoised, so the files the bisection made
    are not made again), and the neighbouring qualities lo < hi where it ended (lo's file at most target_bytes
    and hi's larger, except at the ends 1 and 100, which it never tries)."""
    files: dict[int, bytes] = {}

    def enc(q: int) -> bytes:
        if q not in files:
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format=fmt, quality=q)
            files[q] = buf.getvalue()
        return files[q]
    lo, hi = 1, 100
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if len(enc(mid)) <= target_bytes:
            lo = mid
        else:
            hi = mid
    return enc, lo, hi


def _decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def classic_at_size(img: np.ndarray, fmt: str, target_bytes: int, bracket=None) -> tuple[int, float, float | None]:
    """(bytes, PSNR, MS-SSIM or None) of the Pillow file whose size is nearest target_bytes, over qualities
    1..100 (bisection on quality, then the neighbours). `bracket`: `quality_bracket`'s result, if made already."""
    enc, lo, hi = bracket or quality_bracket(img, fmt, target_bytes)
    best = min((enc(q) for q in {max(1, lo - 1), lo, hi, min(100, hi + 1)}), key=lambda d: abs(len(d) - target_bytes))
    dec = _decoded(best)
    return len(best), psnr_uint8(img, dec), ms_ssim(img, dec)


def classic_interpolated(img: np.ndarray, fmt: str, target_bytes: int, bracket=None) -> float | None:
    """PSNR of the Pillow codec at exactly target_bytes: linear in bytes between the two neighbouring qualities
    whose files bracket that size (None when no two do). Nearest-size files differ from ours by up to a few per
    cent of the bytes; this is the classic codec's quality at our file's own size. `bracket` as above."""
    enc, lo, hi = bracket or quality_bracket(img, fmt, target_bytes)
    (s0, p0), (s1, p1) = ((len(enc(q)), psnr_uint8(img, _decoded(enc(q)))) for q in (lo, hi))
    if not s0 <= target_bytes <= s1 or s1 == s0:
        return None
    return p0 + (p1 - p0) * (target_bytes - s0) / (s1 - s0)


def load_images(folder: str, n: int, crop: int) -> tuple[list[Path], list[np.ndarray]]:
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() == ".png")[:n]
    imgs = []
    for f in files:
        im = read_image(f)[0]
        if crop:
            h, w = im.shape[:2]
            y, x = (h - crop) // 2, (w - crop) // 2
            im = np.ascontiguousarray(im[y:y + crop, x:x + crop])
        imgs.append(im)
    return files, imgs


def prior_dirs(a) -> list[str] | None:
    """Where the decoder looks for priors: --prior-dir, else the folders of the --prior files."""
    return a.prior_dir or (sorted({str(Path(p).parent) for p in a.prior}) if a.prior else None)


def cmb_name(image: str, rate: float) -> str:
    return f"{Path(image).stem}_{rate:g}.cmb"


def encode_all(a, files: list[Path], imgs: list[np.ndarray]) -> list[dict]:
    """Encode every image at every rate (and uniform allocation with --ablate) -> one dict per image and rate."""
    fit = fit_overrides(_fit_config(a), a.fit)
    priors = [Prior.load(p) for p in a.prior] if a.prior else None
    cuda = a.device.startswith("cuda")
    if a.warmup:  # CUDA context, kernels and allocator warm-up: not part of the timed encodes
        run(encode_image_batch([imgs[0][:64, :64]], a.bpp[0], prior=priors[0] if priors else None,
                               fit=FitConfig(steps=4, refine_first=1, refine_last=1, refine_groups=2),
                               device=a.device, prior_dirs=a.prior_dir))
    dirs = prior_dirs(a)
    if a.save_dir:
        Path(a.save_dir).mkdir(parents=True, exist_ok=True)
    items = []
    for ri, r in enumerate(a.bpp):
        pr = priors[ri] if priors else None
        for adaptive in ([True, False] if a.ablate else [True]):
            for s in range(0, len(imgs), a.batch):
                part = imgs[s:s + a.batch]
                if cuda:
                    torch.cuda.reset_peak_memory_stats()
                t0, c0 = time.time(), time.process_time()
                res = run(encode_image_batch(part, r, prior=pr, fit=fit, device=a.device, compile=a.compile,
                                             prior_dirs=a.prior_dir, adaptive=adaptive,
                                             adapt=False if a.no_delta else None,
                                             **({} if a.delta_group is None else {"delta_group": a.delta_group}),
                                             **({"delta_top": False} if a.no_image_delta else {}),
                                             restore=Restoration(floors=not a.no_floors,
                                                                 wiener=not a.no_wiener)))
                enc, enc_cpu = time.time() - t0, time.process_time() - c0
                gpu_mb = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
                for k, (im, e) in enumerate(zip(part, res)):
                    t1 = time.time()
                    dec = decode_image(e.data, prior_dirs=dirs)
                    dec_s = time.time() - t1
                    assert np.array_equal(dec, e.reconstruction)
                    name = files[s + k].name
                    if a.save_dir and adaptive:
                        (Path(a.save_dir) / cmb_name(name, r)).write_bytes(e.data)
                    item = {"image": name, "target_bpp": r, "adaptive": adaptive, "prior": e.prior.name,
                            "mac_per_px": macs_per_pixel(e.prior.inr, e.prior.latent, e.prior.patch),
                            "bytes": len(e.data), "bpp": 8 * len(e.data) / (im.shape[0] * im.shape[1]),
                            "psnr": psnr_uint8(im, dec), "ms_ssim": ms_ssim(im, dec), "encode_s": enc / len(part),
                            "encode_cpu_s": enc_cpu / len(part), "batch": len(part),
                            "decode_s": dec_s, "gpu_peak_mb": gpu_mb,
                            "blocks_min": int(e.unit_blocks.min()), "blocks_max": int(e.unit_blocks.max()),
                            "delta_blocks": e.header.delta_blocks, "delta_groups": len(e.header.group_deltas),
                            "top_delta_blocks": e.header.top_delta[1]}
                    items.append(item)
                    print(json.dumps(item), flush=True)
                    if a.json:
                        with open(a.json, "a") as fh:
                            fh.write(json.dumps(item) + "\n")
    return items


def redecode(items: list[dict], files: list[Path], imgs: list[np.ndarray], folder: str, dirs) -> None:
    """Decode each item's saved .cmb file on this machine: its PSNR must equal the encoding machine's (the
    receiver's result must not depend on the machine beyond float rounding: a pixel may round the other way
    where another BLAS sums in another order), and decode_s becomes this machine's time."""
    by_name = {f.name: im for f, im in zip(files, imgs)}
    for it in items:
        if not it["adaptive"]:
            continue
        data = (Path(folder) / cmb_name(it["image"], it["target_bpp"])).read_bytes()
        assert len(data) == it["bytes"], it["image"]
        t0 = time.time()
        dec = decode_image(data, prior_dirs=dirs)
        it["decode_s"] = time.time() - t0
        ps = psnr_uint8(by_name[it["image"]], dec)
        it["psnr_diff_here"] = ps - it["psnr"]
        if "ms_ssim" not in it:   # runs from before the key have none
            it["ms_ssim"] = ms_ssim(by_name[it["image"]], dec)
        if abs(ps - it["psnr"]) > 0.01:
            raise SystemExit(f"{it['image']} at {it['target_bpp']:g} bpp decodes to {ps:.4f} dB here, "
                             f"{it['psnr']:.4f} dB where it was encoded")
        it["decoded_here"] = True


def add_classic(items: list[dict], files: list[Path], imgs: list[np.ndarray]) -> list[str]:
    """JPEG, WebP and AVIF at each .cmb file's size, for the content-adaptive items; formats this Pillow
    cannot write are skipped (returned)."""
    by_name = {f.name: im for f, im in zip(files, imgs)}
    missing = []
    for it in items:
        if not it["adaptive"] or it["image"] not in by_name:
            continue
        im = by_name[it["image"]]
        for fmt in ("JPEG", "WEBP", "AVIF"):
            if fmt in missing:
                continue
            try:
                bracket = quality_bracket(im, fmt, it["bytes"])   # one bisection for both figures
                nb, ps, ss = classic_at_size(im, fmt, it["bytes"], bracket)
            except (KeyError, OSError, ValueError):
                missing.append(fmt)
                continue
            it[fmt] = {"bpp": 8 * nb / (im.shape[0] * im.shape[1]), "psnr": ps, "ms_ssim": ss,
                       "psnr_at_size": classic_interpolated(im, fmt, it["bytes"], bracket)}
    return missing


def _mean_ssim(entries: list[dict]) -> float | None:
    """Mean MS-SSIM of entries that all have one (None when any lacks it: images under 161 px a side)."""
    vals = [e.get("ms_ssim") for e in entries]
    return float(np.mean(vals)) if vals and all(v is not None for v in vals) else None


def _ssim_text(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def report(a, items: list[dict], n_images: int, missing: list[str]) -> str:
    rows = []
    keys = sorted({(it["target_bpp"], it["prior"]) for it in items}, key=lambda k: (k[0], [it["prior"] for it in items].index(k[1])))
    for r, prior in keys:
        for adaptive in (True, False):
            per = [it for it in items if it["target_bpp"] == r and it["adaptive"] == adaptive and it["prior"] == prior]
            if not per:
                continue
            row = {"target_bpp": r, "adaptive": adaptive, "prior": prior, "n": len(per),
                   "mac": per[0].get("mac_per_px"),
                   "bpp": float(np.mean([p["bpp"] for p in per])), "psnr": float(np.mean([p["psnr"] for p in per])),
                   "encode_s": float(np.mean([p["encode_s"] for p in per])),
                   "decode_s": float(np.mean([p["decode_s"] for p in per])), "ms_ssim": _mean_ssim(per)}
            for fmt in ("JPEG", "WEBP", "AVIF"):
                if all(fmt in p for p in per):
                    row[fmt] = {k: float(np.mean([p[fmt][k] for p in per])) for k in ("bpp", "psnr")}
                    row[fmt]["ms_ssim"] = _mean_ssim([p[fmt] for p in per])
            rows.append(row)
    gpu = [it["gpu_peak_mb"] for it in items if it.get("gpu_peak_mb")]
    side = f"centre {a.crop}x{a.crop} crops" if a.crop else "full images"
    batch = sorted({it.get("batch", a.batch) for it in items})
    where = (f"encoded in an earlier run ({a.from_json}; its log has the machine)" if a.from_json else
             f"device {a.device}, torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} threads, "
             f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    head = (f"Kodak, {n_images} images ({side}), preset {a.preset}, images per batch {'/'.join(map(str, batch))}, "
            f"{where}" + (f"; peak GPU memory {max(gpu):.0f} MiB" if gpu else "") + ".")
    if missing:
        head += f" This Pillow cannot write {', '.join(missing)}."
    if items and all(it.get("decoded_here") for it in items if it["adaptive"]):
        head += (f" Every file was decoded again on the reporting machine ({platform.machine()}, torch "
                 f"{torch.__version__}, {torch.get_num_threads()} threads), PSNR within "
                 f"{max(abs(it['psnr_diff_here']) for it in items if it['adaptive']):.1e} dB of the encoding "
                 "machine's decode; decode times are from there.")
    lines = [head + "\n",
             "| target bpp | allocation | prior | MAC/px | images | bpp (file bytes) | PSNR dB | MS-SSIM | "
             "JPEG bpp / dB / MS-SSIM | WebP bpp / dB / MS-SSIM | AVIF bpp / dB / MS-SSIM | encode s/img | "
             "decode s/img |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cl = [f"{r[f]['bpp']:.3f} / {r[f]['psnr']:.2f} / {_ssim_text(r[f]['ms_ssim'])}" if f in r else "-"
              for f in ("JPEG", "WEBP", "AVIF")]
        mac = f"{r['mac']:.0f}" if r.get("mac") else "-"
        lines.append(f"| {r['target_bpp']:g} | {'by content' if r['adaptive'] else 'uniform'} | {r['prior']} | "
                     f"{mac} | {r['n']} | {r['bpp']:.3f} | {r['psnr']:.2f} | {_ssim_text(r['ms_ssim'])} | "
                     f"{' | '.join(cl)} | {r['encode_s']:.1f} | {r['decode_s']:.3f} |")
    for r in (r for r in rows if r["adaptive"]):   # the classic codecs are measured beside adaptive items only
        per = [p for p in items if p["target_bpp"] == r["target_bpp"] and p["adaptive"] and p["prior"] == r["prior"]]
        parts = []
        for f in ("JPEG", "WEBP", "AVIF"):
            pairs = [(p["psnr"], p[f]["psnr_at_size"]) for p in per if p.get(f, {}).get("psnr_at_size") is not None]
            if not pairs:
                continue
            name = "WebP" if f == "WEBP" else f
            ours, theirs = np.mean(pairs, axis=0)
            parts.append(f"{name} {theirs:.2f} dB" + ("" if len(pairs) == len(per) else
                         f" on the {len(pairs)} images where two of its qualities bracket our size (ours {ours:.2f} "
                         f"there; on {len(per) - len(pairs)} none does)"))
        if parts:
            lines.append(f"\nAt {r['target_bpp']:g} bpp, the classic codecs at exactly our files' sizes (each "
                         "image's PSNR linear in bytes between the two neighbouring qualities): " + ", ".join(parts))
    lines.append("\nPublished anchors on Kodak (bpp, dB): " + "; ".join(
        f"{k} " + " ".join(f"({b}, {p})" for b, p in v) for k, v in ANCHORS.items()))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="folder of Kodak PNGs")
    ap.add_argument("-n", type=int, default=24, help="first N images")
    ap.add_argument("--crop", type=int, default=0, help="centre-crop to this square side (quick runs)")
    ap.add_argument("--bpp", type=float, nargs="+", default=None)
    ap.add_argument("--preset", choices=["fast", "default", "best"], default="fast")
    add_shortlist_option(ap)
    ap.add_argument("--prior", action="append", default=None, help="use this patch prior (repeat: one per --bpp)")
    ap.add_argument("--prior-dir", action="append", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--batch", type=int, default=1, help="images encoded together")
    add_fit_option(ap)
    ap.add_argument("--ablate", action="store_true", help="also encode with uniform block allocation")
    ap.add_argument("--no-delta", action="store_true", help="no image-level network delta (shared-network priors)")
    ap.add_argument("--delta-group", type=int, default=None,
                    help="a network delta per group of NxN patches (0: one per image; default: the encoder's)")
    ap.add_argument("--no-image-delta", action="store_true",
                    help="group deltas without an image-level delta under them (two levels; ablation)")
    ap.add_argument("--no-floors", action="store_true",
                    help="no spectral floors on kind-15 images (engine/image_floors.py; ablation)")
    ap.add_argument("--no-wiener", action="store_true",
                    help="no Wiener filters on kind-15 images (engine/image_wiener.py; ablation)")
    ap.add_argument("--warmup", action="store_true", help="one short untimed encode first (GPU warm-up)")
    ap.add_argument("--no-classic", action="store_true")
    ap.add_argument("--save-dir", default=None, help="also write each .cmb file here")
    ap.add_argument("--from-json", default=None,
                    help="do not encode: report (and add JPEG/WebP/AVIF at the same sizes) from an earlier --json")
    ap.add_argument("--decode-dir", default=None,
                    help="with --from-json: decode the saved .cmb files here, check their PSNR, time the decode")
    ap.add_argument("--out", default=None, help="write a markdown report here")
    ap.add_argument("--json", default=None, help="append one JSON line per image and rate here")
    a = ap.parse_args()

    files, imgs = load_images(a.data, a.n, a.crop)
    if a.from_json:
        items = [json.loads(line) for line in Path(a.from_json).read_text().splitlines() if line.strip()]
        if a.bpp:
            items = [it for it in items if it["target_bpp"] in a.bpp]
    else:
        if not a.bpp:
            ap.error("--bpp is required unless --from-json is given")
        items = encode_all(a, files, imgs)
    if a.from_json and a.decode_dir:
        redecode(items, files, imgs, a.decode_dir, prior_dirs(a))
    missing = [] if a.no_classic else add_classic(items, files, imgs)
    text = report(a, items, len({it["image"] for it in items}), missing)
    print(text)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
