"""Long recordings: CPU time per minute of audio, memory over the encode, decode speed, and a projection.

    python benchmarks/audio_long.py --data ../shared/data/audio/speech_test --minutes 1 --kbps 12 --preset fast

The clips of the folder are joined (sorted, repeated if needed) into one recording of `--minutes`, encoded as one
clip (units in batches of `--batch`), decoded again from its bytes, and scored. Printed: wall and CPU seconds of
the encode per minute of audio, the resident memory after every batch (it must stay flat: memory is bounded by
the batch, not the clip), peak RSS, decode seconds per minute, and the encode time projected to 10 and 60 minutes
from the measured per-batch cost (encode time is linear in the number of batches).

With `--journal PATH` the encode is resumable (engine/journal.py): a run stopped part-way (at the end of a working
session, say) continues from its finished batches when started again with the same options, and the per-batch
CPU and wall seconds, earlier runs' included, come from the journal.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import metrics  # noqa: E402
from engine.audio_codec import decode_audio_full, encode_audio  # noqa: E402
from engine.audio_io import is_audio_path, read_audio  # noqa: E402
from benchmarks.speech_rd import reference_scores  # noqa: E402
from engine.config import PRESETS  # noqa: E402
from engine.journal import Journal  # noqa: E402
from engine.media import write_atomic  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=1.0)
    ap.add_argument("--kbps", type=float, default=12.0)
    ap.add_argument("--preset", default="fast", choices=list(PRESETS))
    ap.add_argument("--batch", type=int, default=512, help="units fitted together")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--save", type=Path, default=None, help="also write the .cmb file here")
    ap.add_argument("--no-references", action="store_true", help="skip MP3 and Opus at the same file size")
    ap.add_argument("--journal", type=Path, default=None, help="keep a journal here and continue the one there")
    ap.add_argument("--compile", action="store_true", help="torch.compile the network (GPU: fewer kernel launches)")
    ap.add_argument("--pack", type=Path, default=None,
                    help="only write the joined recording here (FLAC, 16-bit) for a machine without the data set")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)

    files = sorted(f for f in a.data.iterdir() if is_audio_path(f))
    parts, n, sr = [], 0, 16000
    want = int(a.minutes * 60 * sr)
    while n < want:
        for f in files:
            x, sr, _ = read_audio(f)
            parts.append(x)
            n += len(x)
            if n >= want:
                break
    x = np.concatenate(parts)[:want]
    minutes = len(x) / sr / 60
    if a.pack is not None:   # 16-bit sources: the FLAC holds exactly these samples
        import soundfile as sf

        a.pack.parent.mkdir(parents=True, exist_ok=True)
        sf.write(a.pack, x, sr, subtype="PCM_16")
        y, _ = sf.read(a.pack, dtype="float32", always_2d=True)
        print(f"wrote {a.pack}: {minutes:.2f} min, {a.pack.stat().st_size / 2 ** 20:.1f} MiB, "
              f"samples identical: {bool(np.array_equal(y.reshape(x.shape), x))}")
        return
    print(f"{minutes:.2f} min of speech at {sr} Hz, {a.kbps:g} kbps, preset {a.preset}, batch {a.batch}, "
          f"{torch.get_num_threads()} threads, device {a.device}", flush=True)

    t0, c0 = time.time(), time.process_time()
    journal = Journal(a.journal) if a.journal is not None else None
    gen = encode_audio(x, sr, a.kbps, fit=PRESETS[a.preset], device=a.device, max_units=a.batch, journal=journal,
                       compile=a.compile)
    rss, last_phase, batch_marks = [], None, []
    while True:
        try:
            ev = next(gen)
        except StopIteration as stop:
            r = stop.value
            break
        if last_phase is None and journal is not None and journal.restored:
            print(f"resumed: {journal.restored} of {journal.n_batches} batches from {journal.path} "
                  f"({journal.cpu_s:.0f} CPU s, {journal.wall_s:.0f} wall s in earlier runs)", flush=True)
        if ev.phase == "fit" and last_phase == "code":      # a new batch began
            batch_marks.append((time.time() - t0, time.process_time() - c0))
            rss.append(rss_mb())
            done = len(batch_marks) + (journal.restored if journal is not None else 0)
            print(f"batch {done} done: {batch_marks[-1][0]:.0f} s wall, {batch_marks[-1][1]:.0f} s CPU in this run, "
                  f"RSS {rss[-1]:.0f} MB", flush=True)
        last_phase = ev.phase
    wall, cpu = time.time() - t0, time.process_time() - c0
    rss.append(rss_mb())
    t1 = time.time()
    y, _, hdr, _ = decode_audio_full(r.data)
    dec = time.time() - t1
    batches = -(-hdr.units // a.batch)
    if a.save is not None:
        write_atomic(a.save, r.data)
    m = metrics.speech_metrics(x, y, sr)
    print(f"file {len(r.data)} bytes, {r.kbps:.3f} kbps, {hdr.units} units in {batches} batch(es); SNR {m['snr']:.2f} dB, "
          f"PSNR {m['psnr']:.2f} dB, STOI {metrics.fmt(m['stoi'], 3)}, PESQ {metrics.fmt(m['pesq'])}")
    if journal is not None and journal.restored:   # this run did only part of the batches: count them all
        print(f"this run: {wall:.0f} s wall, {cpu:.0f} s CPU for {len(journal.records) - journal.restored} of "
              f"{len(journal.records)} batches")
        wall, cpu = journal.wall_s, journal.cpu_s
        print("encode (per-batch seconds from the journal, every run): ", end="")
    else:
        print("encode: ", end="")
    print(f"{wall:.0f} s wall, {cpu:.0f} s CPU = {cpu / minutes:.0f} CPU s per minute of audio "
          f"({wall / minutes:.0f} wall s per minute)")
    print("RSS after each batch (MB): " + ", ".join(f"{v:.0f}" for v in rss))
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    if torch.cuda.is_available() and str(a.device).startswith("cuda"):
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2 ** 20:.0f} MiB")
    print(f"decode: {dec:.2f} s = {dec / minutes:.2f} s per minute of audio")
    per_batch = cpu / batches
    units_per_min = hdr.units / minutes
    for mins in (10, 60):
        b = -(-int(units_per_min * mins) // a.batch)
        print(f"projected encode of {mins} min: {b} batches x {per_batch:.0f} CPU s = {b * per_batch / 3600:.2f} CPU hours")
    if not a.no_references:   # the classic codecs at the same file size, same recording, same measures
        for codec, v in reference_scores(x, sr, len(r.data)).items():
            print(f"{codec} at the same size: {v['kbps']:.3f} kbps; SNR {v['snr']:.2f} dB, PSNR {v['psnr']:.2f} dB, "
                  f"STOI {metrics.fmt(v['stoi'], 3)}, PESQ {metrics.fmt(v['pesq'])}")


if __name__ == "__main__":
    main()
