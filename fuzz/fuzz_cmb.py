"""Coverage-guided fuzzing (atheris + libFuzzer) of the `.cmb` reader and the full decoders of every kind.

    python fuzz/fuzz_cmb.py --kind KIND [libFuzzer flags] NEW_CORPUS_DIR fuzz/corpus/KIND

KIND: container (container.read on raw bytes), image (single-image codec), patch (patch-coded images),
alpha (patch-coded images with an alpha plane), audio. For every kind but `container` the harness replaces the
input's last two bytes by its correct CRC, so mutations reach the field checks and the decoders instead of
stopping at the checksum. Decoding runs end to end, with the shipped priors (priors/), under decode limits of
4 megapixels / 60 s so that a legal but large file cannot turn the campaign into a benchmark.

Pass: every input either decodes or raises the engine's format error (CombinerError and its subclasses).
Anything else (another exception, a crash, a hang past libFuzzer's -timeout, memory past -rss_limit_mb) is a
finding: libFuzzer stops and writes the input to crash-*/timeout-*/oom-*.

A CI slice (tests/test_fuzz.py): `-runs=N -seed=1` into a temporary folder. A long campaign:

    nice -n 10 python fuzz/fuzz_cmb.py --kind audio -runs=100000 -seed=7 -timeout=10 -rss_limit_mb=2048 \
        /tmp/fuzz-audio fuzz/corpus/audio

With FUZZ_STATS=path the harness writes outcome counts (decoded, format error by message, ...) as JSON at exit;
fuzz/campaign.py runs every kind that way and prints a table.
"""
from __future__ import annotations

import atexit
import binascii
import collections
import json
import os
import re
import sys
from pathlib import Path

import atheris

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

with atheris.instrument_imports(include=["engine"]):
    from engine import container, limits
    from engine.audio_codec import decode_audio_full
    from engine.codec import decode_full
    from engine.errors import CombinerError
    from engine.patch_codec import decode_image_full

import torch  # noqa: E402

KINDS = ("container", "image", "patch", "alpha", "audio")
PRIORS = [str(ROOT / "priors")]
LIMITS = limits.Limits(max_pixels=4_000_000, max_seconds=60.0)
stats: collections.Counter = collections.Counter()
_RUNS = -1


def _bucket(msg: str) -> str:
    """Group messages by their wording without the numbers in them."""
    msg = re.sub(r"\b[0-9a-f]{6}\b", "ID", msg.split(" (")[0])   # prior ids
    return re.sub(r"\d+", "N", msg)[:80]


def decode_any(data: bytes) -> str:
    """Decode `.cmb` bytes with the decoder its header names, as the CLI does -> what came out."""
    hdr = container.read_header(data)
    limits.check_header(hdr, LIMITS)
    if hdr.modality == "audio":
        y, sr, _, _ = decode_audio_full(data, PRIORS)
        return "decoded audio"
    if hdr.patch:
        decode_image_full(data, PRIORS)
        return "decoded patches" + (" + alpha" if hdr.alpha else "")
    decode_full(data, PRIORS)
    return "decoded image"


def make_target(kind: str):
    def one(data: bytes) -> None:
        if kind != "container":
            body = data[:-container.CRC_BYTES] if len(data) > container.CRC_BYTES else data
            data = body + binascii.crc_hqx(body, 0).to_bytes(container.CRC_BYTES, "little")
        try:
            if kind == "container":
                container.read(data)
                stats["read"] += 1
            else:
                with limits.override(LIMITS.max_pixels, LIMITS.max_seconds):
                    stats[decode_any(data)] += 1
        except CombinerError as e:
            stats[f"{type(e).__name__}: {_bucket(str(e))}"] += 1
        n = sum(stats.values())
        if n % 1000 == 0 or n == _RUNS:  # libFuzzer ends the process with _exit: no atexit
            _write_stats()
    return one


def _write_stats() -> None:
    path = os.environ.get("FUZZ_STATS")
    if path:
        Path(path).write_text(json.dumps(dict(stats), indent=1, sort_keys=True))


def main() -> None:
    argv = list(sys.argv)
    kind = "container"
    if "--kind" in argv:
        i = argv.index("--kind")
        kind = argv[i + 1]
        del argv[i:i + 2]
    if kind not in KINDS:
        raise SystemExit(f"--kind must be one of {', '.join(KINDS)}")
    global _RUNS
    for a in argv:
        if a.startswith("-runs="):
            _RUNS = int(a.split("=", 1)[1])
    torch.set_num_threads(1)
    atexit.register(_write_stats)
    atheris.Setup(argv, make_target(kind))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
