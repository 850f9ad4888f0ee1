"""Rate-distortion of the speech codec on real clips, beside MP3 and Opus at the same file size.

    python benchmarks/speech_rd.py --data ../shared/data/audio/speech_test -n 12 --seconds 3 --kbps 5 10 20 40

Every clip is cropped to its middle `--seconds` (0 = whole clip), encoded at each rate (all clips of a rate as one
batch), written, and decoded again from its bytes. Rates come from the real file size (header included) over the
clip's duration. PSNR maps the waveform from [-1, 1] to [0, 1] (peak 1; the COIN++/RECOMBINER convention), computed
per clip and averaged; SNR likewise. MP3 (LAME) and Opus are encoded through libsndfile at the compression level
whose file is nearest the COMBINER file of the same clip; their output is aligned to the original before scoring.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.audio_codec import audio_psnr, audio_snr, decode_audio_full, encode_audio_batch  # noqa: E402
from engine.audio_io import is_audio_path, read_audio  # noqa: E402
from engine.codec import run  # noqa: E402
from engine.config import PRESETS  # noqa: E402
from engine.reference_codecs import at_size  # noqa: E402

ANCHORS = {  # published (kbps, PSNR dB) on LibriSpeech, for the table
    "RECOMBINER": [(5.7, 42.6), (10.7, 47.1), (22.1, 52.2), (43.6, 58.2)],
    "MP3 (RECOMBINER paper)": [(20, 43.5), (28, 45.9)],
    "COIN++": [(5.6, 36.0), (13.8, 39.4)],
}


def load_clips(folder: Path, n: int, seconds: float) -> list[tuple[str, np.ndarray, int]]:
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
        out.append((f.name, x, sr))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("-n", type=int, default=12, help="clips (spread over the folder; 0 = all)")
    ap.add_argument("--seconds", type=float, default=3.0, help="crop each clip to its middle (0 = whole)")
    ap.add_argument("--kbps", type=float, nargs="+", default=[5, 10, 20, 40])
    ap.add_argument("--preset", default="default", choices=list(PRESETS))
    ap.add_argument("--prior-dir", action="append", default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--no-reference", action="store_true", help="skip MP3/Opus")
    ap.add_argument("--json", type=Path, help="write per-clip results here")
    a = ap.parse_args()

    clips = load_clips(a.data, a.n, a.seconds)
    total_s = sum(x.shape[0] / sr for _, x, sr in clips)
    print(f"{len(clips)} clips, {total_s:.1f} s of audio, device {a.device}, preset {a.preset}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    rows, per_clip = [], []
    for kbps in a.kbps:
        t0 = time.time()
        res = run(encode_audio_batch([(x, sr) for _, x, sr in clips], kbps, fit=PRESETS[a.preset],
                                     device=a.device, prior_dirs=a.prior_dir, compile=a.compile))
        enc_s = time.time() - t0
        m = {"kbps": [], "psnr": [], "snr": [], "dec_s": []}
        ref = {c: {"kbps": [], "psnr": [], "snr": []} for c in ("mp3", "opus")}
        for (name, x, sr), r in zip(clips, res):
            t1 = time.time()
            y, sr2, _, _ = decode_audio_full(r.data, a.prior_dir)   # score what the receiver decodes
            m["dec_s"].append(time.time() - t1)
            sec = x.shape[0] / sr
            m["kbps"].append(8 * len(r.data) / sec / 1000)
            m["psnr"].append(audio_psnr(x, y))
            m["snr"].append(audio_snr(x, y))
            row = {"clip": name, "target_kbps": kbps, "kbps": m["kbps"][-1], "psnr": m["psnr"][-1],
                   "snr": m["snr"][-1], "prior": r.prior.name}
            if not a.no_reference:
                for c in ref:
                    rr = at_size(x, sr, c, len(r.data))
                    if rr is None:
                        continue
                    ref[c]["kbps"].append(rr.kbps(sec))
                    ref[c]["psnr"].append(audio_psnr(x, rr.decoded))
                    ref[c]["snr"].append(audio_snr(x, rr.decoded))
                    row[c] = {"kbps": ref[c]["kbps"][-1], "psnr": ref[c]["psnr"][-1], "snr": ref[c]["snr"][-1]}
            per_clip.append(row)
        line = {"target": kbps, "kbps": np.mean(m["kbps"]), "psnr": np.mean(m["psnr"]), "snr": np.mean(m["snr"]),
                "enc_s_per_clip": enc_s / len(clips), "dec_s_per_clip": np.mean(m["dec_s"]),
                "prior": res[0].prior.name}
        for c in ref:
            if ref[c]["kbps"]:
                line[c] = (np.mean(ref[c]["kbps"]), np.mean(ref[c]["psnr"]), np.mean(ref[c]["snr"]))
        rows.append(line)
        ref_txt = "  ".join(f"{c} {v[0]:.2f} kbps {v[1]:.2f} dB (SNR {v[2]:.2f})" for c in ("mp3", "opus")
                            if (v := line.get(c)))
        print(f"target {kbps:g} kbps: COMBINER {line['kbps']:.2f} kbps PSNR {line['psnr']:.2f} dB SNR "
              f"{line['snr']:.2f} dB | {ref_txt} | encode {line['enc_s_per_clip']:.1f} s/clip (batch), decode "
              f"{line['dec_s_per_clip'] * 1000:.0f} ms/clip [{line['prior']}]", flush=True)
    print("\n| target kbps | COMBINER kbps | PSNR dB | SNR dB | MP3 kbps / PSNR / SNR | Opus kbps / PSNR / SNR |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        ref_cells = [f"{v[0]:.2f} / {v[1]:.2f} / {v[2]:.2f}" if (v := r.get(c)) else "n/a" for c in ("mp3", "opus")]
        print(f"| {r['target']:g} | {r['kbps']:.2f} | {r['psnr']:.2f} | {r['snr']:.2f} | {ref_cells[0]} | {ref_cells[1]} |")
    print("\npublished anchors (LibriSpeech, kbps, PSNR dB):", json.dumps(ANCHORS))
    if a.json:
        a.json.write_text(json.dumps({"rows": rows, "clips": per_clip}, indent=1, default=float))


if __name__ == "__main__":
    main()
