"""Rate-distortion of the speech codec on real clips, beside MP3 and Opus at the same file size.

    python benchmarks/speech_rd.py --data ../shared/data/audio/speech_test -n 8 --seconds 3 --kbps 6 12 24
    python benchmarks/speech_rd.py ... --level -60      # every clip scaled to -60 dBFS (gated RMS) first

Every clip is cropped to its middle `--seconds` (0 = whole clip), optionally brought to `--level` dBFS, encoded at
each rate (all clips of a rate as one batch), written, and decoded again from its bytes. Rates come from the real
file size (header included) over the clip's duration. Per clip: SNR (dB), PSNR with the waveform mapped from
[-1, 1] to [0, 1] (the COIN++/RECOMBINER convention; it flatters quiet clips), STOI (pystoi) and wideband PESQ
(pesq, P.862.2); the table shows their means. MP3 (LAME) and Opus go through libsndfile at the compression level
whose file is nearest the COMBINER file of the same clip; their output is aligned to the original before scoring.
`--silence` also codes 3 s of digital silence and reports the decoded RMS. `--from-json` redoes only the MP3/Opus
side at the file sizes an earlier run recorded (same clip options).
"""
from __future__ import annotations

import argparse
import json
import re
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import metrics  # noqa: E402
from benchmarks.fit_options import add_fit_option, fit_overrides  # noqa: E402
from engine.audio_codec import adapt_mode, decode_audio_full, encode_audio_batch  # noqa: E402
from engine.audio_gain import level_dbfs  # noqa: E402
from engine.audio_io import is_audio_path, read_audio  # noqa: E402
from engine.codec import run  # noqa: E402
from engine.cli import _fit_config, add_shortlist_option  # noqa: E402
from engine.config import PRESETS  # noqa: E402
from engine.reference_codecs import at_size  # noqa: E402

ANCHORS = {  # published (kbps, PSNR dB) on LibriSpeech, for the table
    "RECOMBINER": [(5.7, 42.6), (10.7, 47.1), (22.1, 52.2), (43.6, 58.2)],
    "MP3 (RECOMBINER paper)": [(20, 43.5), (28, 45.9)],
    "COIN++": [(5.6, 36.0), (13.8, 39.4)],
}
MEASURES = ("kbps", "snr", "psnr", "stoi", "pesq")


def load_clips(folder: Path, n: int, seconds: float, level: float | None) -> list[tuple[str, np.ndarray, int]]:
    files = sorted(f for f in folder.iterdir() if is_audio_path(f))
    if n:
        files = files[:: max(1, len(files) // n)][:n]   # spread over speakers and sources
    out = []
    for f in files:
        x, sr, _ = read_audio(f)
        if seconds:
            m = int(round(seconds * sr))
            s = max(0, (x.shape[0] - m) // 2)
            x = x[s:s + m]
        if level is not None:
            x = (x * 10 ** ((level - level_dbfs(x, sr)) / 20)).astype(np.float32)
        out.append((f.name, x, sr))
    return out


def score(x: np.ndarray, y: np.ndarray, sr: int, nbytes: int) -> dict:
    return {"kbps": 8 * nbytes / (x.shape[0] / sr) / 1000} | metrics.speech_metrics(x, y, sr)


def mean(rows: list[dict], key: str) -> float:
    v = [r[key] for r in rows if r.get(key) is not None and np.isfinite(r[key])]
    return float(np.mean(v)) if v else float("nan")


def reference_scores(x: np.ndarray, sr: int, nbytes: int) -> dict:
    """MP3 and Opus at the size nearest `nbytes`, scored like ours (codecs libsndfile lacks are left out)."""
    out = {}
    for c in ("mp3", "opus"):
        rr = at_size(x, sr, c, nbytes)
        if rr is not None:
            out[c] = score(x, rr.decoded, sr, rr.nbytes) | {"mode": rr.mode}
    return out


def published_scores(folder: Path, clip: tuple[str, np.ndarray, int]) -> list[dict]:
    """Another codec's decodes of `clip`, scored like ours: every audio file in `folder` with '<kbps>kbps' in its
    name (e.g. RECOMBINER's examples, decoded_10.81kbps_51.53dB.wav). Their rate is the one in the name: those
    decodes come without their coded files."""
    name, x, sr = clip
    out = []
    for f in sorted(f for f in folder.iterdir() if is_audio_path(f)):
        m = re.search(r"(\d+(?:\.\d+)?)kbps", f.name)
        if m is None:
            continue
        y, ysr, _ = read_audio(f)
        if ysr != sr or y.shape != x.shape:
            raise SystemExit(f"{f.name} is not a decode of {name} ({y.shape} at {ysr} Hz against {x.shape} at {sr})")
        out.append({"file": f.name, "kbps": float(m.group(1))} | metrics.speech_metrics(x, y, sr))
    return sorted(out, key=lambda r: r["kbps"])


def print_table(rows: list[dict]) -> None:
    print("\n| target kbps | codec | kbps | SNR dB | PSNR dB | STOI | PESQ-WB |\n|---|---|---|---|---|---|---|")
    for r in rows:
        for c, label in (("ours", "COMBINER"), ("mp3", "MP3"), ("opus", "Opus")):
            if c in r:
                v = r[c]
                print(f"| {r['target']:g} | {label} | {v['kbps']:.2f} | {v['snr']:.2f} | {v['psnr']:.2f} | "
                      f"{metrics.fmt(v['stoi'], 3)} | {metrics.fmt(v['pesq'])} |")


def references_again(a) -> None:
    """MP3/Opus at the file sizes of an earlier run's clips (our scores as recorded there)."""
    old = json.loads(a.from_json.read_text())
    clips = {name: (x, sr) for name, x, sr in load_clips(a.data, a.n, a.seconds, a.level)}
    rows = []
    for line in old["rows"]:
        ours = [c for c in old["clips"] if c["target_kbps"] == line["target"]]
        ref = {"mp3": [], "opus": []}
        for c in ours:
            x, sr = clips[c["clip"]]
            for k, v in reference_scores(x, sr, int(round(c["kbps"] * 1000 / 8 * x.shape[0] / sr))).items():
                ref[k].append(v)
        row = {"target": line["target"], "ours": {k: mean(ours, k) for k in MEASURES}}
        row |= {k: {m: mean(v, m) for m in MEASURES} for k, v in ref.items() if v}
        rows.append(row)
        print(f"target {line['target']:g} kbps [{line['prior']}]: " + " | ".join(
            f"{c} " + " ".join(f"{k} {row[c][k]:.2f}" for k in MEASURES) for c in ("ours", "mp3", "opus") if c in row),
            flush=True)
    print_table(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("-n", type=int, default=8, help="clips (spread over the folder; 0 = all)")
    ap.add_argument("--seconds", type=float, default=3.0, help="crop each clip to its middle (0 = whole)")
    ap.add_argument("--kbps", type=float, nargs="+", default=[6, 12, 24])
    ap.add_argument("--level", type=float, default=None, help="bring every clip to this gated level (dBFS)")
    ap.add_argument("--preset", default="default", choices=list(PRESETS))
    add_shortlist_option(ap)
    ap.add_argument("--uniform", action="store_true", help="one block count for every chunk (ablation)")
    ap.add_argument("--delta", action="store_const", const=True, default=None,
                    help="code a clip-level network delta (kind 12; ablation)")
    ap.add_argument("--try-delta", action="store_true",
                    help="code every clip without and with a clip-level delta, keep the better (twice the time)")
    ap.add_argument("--no-envelope", action="store_true", help="no chunk envelope (kind 10 or 12; ablation)")
    ap.add_argument("--no-bands", action="store_true", help="no band gains (ablation; engine/audio_bands.py)")
    ap.add_argument("--prior-dir", action="append", default=None)
    ap.add_argument("--prior", default=None, help="force this prior file for every rate")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--compile", action="store_true")
    add_fit_option(ap)
    ap.add_argument("--no-reference", action="store_true", help="skip MP3/Opus")
    ap.add_argument("--silence", action="store_true", help="also code 3 s of digital silence")
    ap.add_argument("--published", type=Path, help="a folder of another codec's decodes of the one clip in --data "
                    "(rate in each file name, '<kbps>kbps'), scored beside ours in the same run")
    ap.add_argument("--json", type=Path, help="write per-clip results here")
    ap.add_argument("--from-json", type=Path, help="do not encode: take our per-clip results from an earlier --json "
                    "(same --data, -n, --seconds, --level) and measure MP3/Opus again at those file sizes")
    a = ap.parse_args()
    if a.from_json:
        references_again(a)
        return

    forced, dec_dirs = None, a.prior_dir
    if a.prior:
        from engine.prior import Prior

        forced = Prior.load(a.prior)
        dec_dirs = (a.prior_dir or []) + [str(Path(a.prior).resolve().parent)]   # the decoder finds it by id
    clips = load_clips(a.data, a.n, a.seconds, a.level)
    total_s = sum(x.shape[0] / sr for _, x, sr in clips)
    print(f"{len(clips)} clips, {total_s:.1f} s of audio, level {a.level if a.level is not None else 'as recorded'}, "
          f"device {a.device}, preset {a.preset}, {'uniform' if a.uniform else 'by content'}, "
          f"{'clip delta' if a.delta else 'delta where it helps' if a.try_delta else 'no delta'}, "
          f"{'no envelope' if a.no_envelope else 'envelope'}, {'no bands' if a.no_bands else 'bands'}, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    fit = fit_overrides(_fit_config(a), a.fit)
    rows, per_clip = [], []
    for kbps in a.kbps:
        t0, c0 = time.time(), time.process_time()
        res = run(encode_audio_batch([(x, sr) for _, x, sr in clips], kbps, prior=forced, fit=fit,
                                     device=a.device, prior_dirs=a.prior_dir, compile=a.compile,
                                     adaptive=not a.uniform,
                                     adapt=adapt_mode(a.delta, a.try_delta),
                                     envelope=not a.no_envelope, bands=not a.no_bands))
        enc_s, enc_cpu = time.time() - t0, time.process_time() - c0
        ours, ref = [], {"mp3": [], "opus": []}
        dec_s = []
        for (name, x, sr), r in zip(clips, res):
            t1 = time.time()
            y, _, _, _ = decode_audio_full(r.data, dec_dirs)   # score what the receiver decodes
            dec_s.append(time.time() - t1)
            row = {"clip": name, "target_kbps": kbps, "prior": r.prior.name} | score(x, y, sr, len(r.data))
            ours.append(row)
            if not a.no_reference:
                for c, v in reference_scores(x, sr, len(r.data)).items():
                    row[c] = v
                    ref[c].append(v)
            per_clip.append(row)
        line = {"target": kbps, "prior": res[0].prior.name, "enc_s": enc_s, "enc_cpu_s": enc_cpu,
                "audio_s": total_s, "dec_s_per_clip": float(np.mean(dec_s))}
        line["ours"] = {k: mean(ours, k) for k in MEASURES}
        for c in ref:
            if ref[c]:
                line[c] = {k: mean(ref[c], k) for k in MEASURES}
        rows.append(line)
        txt = " | ".join(f"{c} " + " ".join(f"{k} {line[c][k]:.2f}" for k in MEASURES)
                         for c in ("ours", "mp3", "opus") if c in line)
        print(f"target {kbps:g} kbps: {txt} | encode {enc_s:.0f} s wall, {enc_cpu:.0f} s CPU for {total_s:.0f} s of "
              f"audio, decode {line['dec_s_per_clip'] * 1000:.0f} ms/clip [{line['prior']}]", flush=True)
    print_table(rows)
    if a.silence:
        sr = clips[0][2]
        z = np.zeros((3 * sr, 1), dtype=np.float32)
        r = run(encode_audio_batch([(z, sr)], a.kbps[0], prior=forced, fit=fit, device=a.device,
                                   prior_dirs=a.prior_dir))[0]
        y, _, _, _ = decode_audio_full(r.data, dec_dirs)
        rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))
        print(f"\ndigital silence, 3 s: {len(r.data)} bytes, decoded RMS "
              f"{'-inf' if rms == 0 else f'{20 * np.log10(rms):.1f}'} dBFS, max |y| {float(np.abs(y).max())}")
    published = []
    if a.published:
        if len(clips) != 1:
            raise SystemExit("--published needs exactly one clip in --data (-n 1)")
        published = published_scores(a.published, clips[0])
        print(f"\n| published decode of {clips[0][0]} | kbps (file name) | SNR dB | PSNR dB | STOI | PESQ-WB |\n"
              "|---|---|---|---|---|---|")
        for r in published:
            print(f"| {r['file']} | {r['kbps']:g} | {r['snr']:.2f} | {r['psnr']:.2f} | {metrics.fmt(r['stoi'], 3)} | "
                  f"{metrics.fmt(r['pesq'])} |")
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print("published anchors (LibriSpeech, kbps, PSNR dB):", json.dumps(ANCHORS))
    if a.json:
        a.json.write_text(json.dumps({"rows": rows, "clips": per_clip, "published": published}, indent=1,
                                     default=float))


if __name__ == "__main__":
    main()
