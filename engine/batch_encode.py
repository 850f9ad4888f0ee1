"""Encoding a folder of many files, in one process or across processes/GPUs started by torchrun.

    combiner encode FOLDER/ -o OUT/ --bpp 1 [--kbps 12] ...
    torchrun --standalone --nproc-per-node N -m engine.cli encode FOLDER/ -o OUT/ --bpp 1 ...

- The files of FOLDER (images and audio, sorted by name, not recursive) are split into disjoint shards:
  rank r takes files r, r + N, r + 2N, ... Each rank encodes on its own device (cuda:LOCAL_RANK when CUDA is
  available and --device is not cpu; the CPU otherwise).
- Every file is encoded on its own (a batch of one), so its bytes do not depend on which other files a rank
  holds: N processes write exactly the files one process writes.
- Outputs OUT/<stem>.cmb are written atomically (temporary file + rename). A re-run skips every output that
  already exists and reads back as a complete `.cmb` file (header, length and checksum verified), and
  re-encodes a damaged one; `--no-skip-existing` re-encodes everything.
- A file that cannot be encoded is reported (one line) and counted as a failure; the others go on.
- Rank 0 prints one summary for all ranks (files, encoded, skipped, failed, bytes, mean bpp / kbps, time,
  files per second per rank); the exit status is 1 if any file failed.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path

from .errors import CmbFormatError, CombinerError


@dataclass
class RankStats:
    rank: int
    device: str
    files: int = 0
    encoded: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)
    bytes: int = 0
    image_bits: float = 0.0
    image_pixels: int = 0
    audio_bits: float = 0.0
    audio_seconds: float = 0.0
    seconds: float = 0.0


def folder_inputs(folder: Path) -> list[Path]:
    from .audio_io import is_audio_path
    from .media import IMAGE_SUFFIXES

    try:
        files = sorted(f for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")
                       and (f.suffix.lower() in IMAGE_SUFFIXES or is_audio_path(f)))
    except OSError as e:
        raise CombinerError(f"{folder}: cannot list it ({e.strerror or e})") from None
    return files


def shard(files: list, rank: int, world: int) -> list:
    """Rank r's disjoint share: files r, r + world, r + 2 world, ..."""
    return files[rank::world]


def is_done(dest: Path) -> bool:
    """An output that exists and reads back as a complete .cmb file (header, length, checksum)."""
    from . import container

    try:
        container.read_header(dest.read_bytes())
        return True
    except (OSError, CmbFormatError):
        return False


def _header_stats(data: bytes) -> tuple[str, float, float]:
    from . import container

    h = container.read_header(data)
    if h.modality == "audio":
        return "audio", 8.0 * len(data), h.shape[0] / h.shape[2]
    return "image", 8.0 * len(data), h.shape[0] * h.shape[1]


def encode_folder(a, folder: Path, out: Path | None) -> int:
    import torch

    from . import threads
    from .cli import _device, encode_items, journal_for
    from .errors import MediaError
    from .media import check_writable, clean_stale_temps, read_image, write_atomic
    from .audio_io import is_audio_path, read_audio

    if out is None:
        raise CombinerError("encoding a folder needs -o OUT_FOLDER")
    if out.exists() and not out.is_dir():
        raise CombinerError(f"-o {out}: not a folder")
    files = folder_inputs(folder)
    if not files:
        raise CombinerError(f"{folder}: no images or audio files in this folder")
    stems: dict[str, Path] = {}
    for f in files:
        if f.stem in stems:
            raise CombinerError(f"{stems[f.stem].name} and {f.name} would both be written to {f.stem}.cmb")
        stems[f.stem] = f
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    dev = _device(a.device)
    if world > 1 and dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(dev)
    out.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        clean_stale_temps(out)   # left by a killed earlier run
    check_writable(out / ".combiner-probe.cmb")
    mine = shard(files, rank, world)
    st = RankStats(rank, str(dev), files=len(mine))
    t0 = time.time()
    for f in mine:
        dest = out / (f.stem + ".cmb")
        if a.skip_existing and is_done(dest):
            st.skipped += 1
            continue
        try:
            imgs, clips = {}, {}
            if is_audio_path(f):
                x, sr, warns = read_audio(f)
                clips[0] = (x, sr)
            else:
                try:
                    imgs[0], warns = read_image(f, keep_channels=True)
                except MediaError as e:
                    try:
                        x, sr, warns = read_audio(f)
                        clips[0] = (x, sr)
                    except MediaError:
                        raise e from None
            for w in warns:
                print(f"combiner: warning: {w}", file=sys.stderr)
            if imgs and a.bpp is None:
                raise CombinerError(f"{f}: images need a target rate: --bpp")
            if clips and a.kbps is None:
                raise CombinerError(f"{f}: audio needs a target rate: --kbps")
            from .cli import _encode_work

            threads.apply(a.threads, _encode_work(imgs, clips))
            data, line, _, _ = encode_items(a, [f], imgs, clips, dev, [dest])[0]
            write_atomic(dest, data, protect=[f])
            journal_for(dest).remove()
        except CombinerError as e:
            st.failed.append(f"{f.name}: {e}")
            print(f"combiner: error: {e}", file=sys.stderr)
            continue
        st.encoded += 1
        if not a.quiet:
            print(f"{f} -> {dest}: {line}")
    st.seconds = time.time() - t0
    for f in mine:  # totals over every output of this shard, skipped ones included
        dest = out / (f.stem + ".cmb")
        try:
            data = dest.read_bytes()
            kind, bits, amount = _header_stats(data)
        except (OSError, CmbFormatError):
            continue
        st.bytes += len(data)
        if kind == "audio":
            st.audio_bits, st.audio_seconds = st.audio_bits + bits, st.audio_seconds + amount
        else:
            st.image_bits, st.image_pixels = st.image_bits + bits, st.image_pixels + int(amount)
    all_stats = gather_stats(st, rank, world) if world > 1 else [st]
    failed = sum(len(s.failed) for s in all_stats)
    if rank == 0:
        print(summary(all_stats, len(files)))
    return 1 if failed else 0


STATS_KEY = "combiner-encode-stats"
STATS_WAIT = timedelta(days=7)   # the longest one rank waits for the others to finish their shards


def gather_stats(st: RankStats, rank: int, world: int) -> list[RankStats]:
    """Every rank's stats, in rank order, exchanged through the key-value store of torchrun (env://): no process
    group is needed for one exchange of a few hundred bytes, and a gloo group torn down at exit aborted a rank now
    and then ("terminate called without an active exception", SIGABRT after every file was written). Where rank 0
    hosts the store itself (started without torchrun's agent) it leaves only after every rank has read."""
    import torch.distributed as dist

    store, _, _ = next(dist.rendezvous("env://", rank, world, timeout=STATS_WAIT))
    key = f"{STATS_KEY}/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
    store.set(f"{key}/{rank}", json.dumps(asdict(st)))
    out = [RankStats(**json.loads(store.get(f"{key}/{r}"))) for r in range(world)]
    store.add(f"{key}/read", 1)
    while rank == 0 and store.add(f"{key}/read", 0) < world:
        time.sleep(0.05)
    return out


def summary(stats: list[RankStats], n_files: int) -> str:
    enc = sum(s.encoded for s in stats)
    skip = sum(s.skipped for s in stats)
    failed = [m for s in stats for m in s.failed]
    nbytes = sum(s.bytes for s in stats)
    px, ib = sum(s.image_pixels for s in stats), sum(s.image_bits for s in stats)
    secs, ab = sum(s.audio_seconds for s in stats), sum(s.audio_bits for s in stats)
    parts = [f"{n_files} files: {enc} encoded, {skip} already done, {len(failed)} failed; {nbytes} bytes"]
    if px:
        parts.append(f"mean {ib / px:.4f} bpp")
    if secs:
        parts.append(f"mean {ab / secs / 1000:.3f} kbps")
    wall = max(s.seconds for s in stats)
    rates = ", ".join(f"rank {s.rank} ({s.device}) {s.encoded / s.seconds if s.seconds > 0 else 0:.3f} files/s"
                      for s in stats)
    lines = ["; ".join(parts) + f"; {wall:.1f} s on {len(stats)} process(es): {rates}"]
    lines += [f"  failed: {m}" for m in failed]
    return "\n".join(lines)
