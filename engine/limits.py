"""Decode limits: refuse decompression bombs from the header, before anything large is allocated.

A `.cmb` file of a few kilobytes can declare a 65536 x 65536 image or hours of 1.5 MHz audio. As Pillow does
for images, the decoders refuse outputs above a limit unless told otherwise:

- images: H x W pixels <= max_pixels (default 178,956,970, the size Pillow itself refuses);
- audio: the decoded samples N x C <= max_seconds x 96,000, i.e. `max_seconds` of 48 kHz stereo
  (default 1800 s: 172.8 million samples, 0.7 GB as float32), and the duration N / rate <= max_seconds.

Overrides, strongest first: `override(...)` (a context manager, used by the CLI for --max-pixels /
--max-seconds and by the app after the user agrees), then the environment variables COMBINER_MAX_PIXELS and
COMBINER_MAX_SECONDS, then the defaults. A limit of 0 means "no limit".

The app calls `check_header(hdr)` (or `check_file(data)`) itself to ask before decoding; every decoder also
calls it right after parsing the header.
"""
from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass

from .errors import CombinerError

DEFAULT_MAX_PIXELS = 178_956_970      # Pillow's DecompressionBombError threshold (2 x MAX_IMAGE_PIXELS)
DEFAULT_MAX_SECONDS = 1800.0
SAMPLES_PER_SECOND = 96_000           # 48 kHz stereo: how a "second" of audio is counted for the sample cap
ENV_PIXELS = "COMBINER_MAX_PIXELS"
ENV_SECONDS = "COMBINER_MAX_SECONDS"

_local = threading.local()


class DecodeLimitError(CombinerError):
    """The header declares an output above the decode limit. `kind` is "pixels" or "seconds"; `size` the
    declared amount in that unit; `limit` the limit in force; `needed` the smallest override that allows it."""

    def __init__(self, msg: str, kind: str, size: float, limit: float, needed: float):
        super().__init__(msg)
        self.kind, self.size, self.limit, self.needed = kind, size, limit, needed


@dataclass(frozen=True)
class Limits:
    max_pixels: int
    max_seconds: float


def _env_number(name: str, default: float, cast) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        v = cast(float(raw))
    except (TypeError, ValueError, OverflowError):
        raise CombinerError(f"${name}={raw!r} is not a number") from None
    if not v >= 0:
        raise CombinerError(f"${name}={raw!r} must be 0 (no limit) or positive")
    return v


def current() -> Limits:
    """The limits in force in this thread."""
    stack = getattr(_local, "stack", None)
    if stack:
        return stack[-1]
    return Limits(int(_env_number(ENV_PIXELS, DEFAULT_MAX_PIXELS, int)),
                  float(_env_number(ENV_SECONDS, DEFAULT_MAX_SECONDS, float)))


@contextlib.contextmanager
def override(max_pixels: int | None = None, max_seconds: float | None = None):
    """Decode with other limits inside the block (None keeps the one in force; 0 = no limit). Per thread."""
    base = current()
    new = Limits(base.max_pixels if max_pixels is None else int(max_pixels),
                 base.max_seconds if max_seconds is None else float(max_seconds))
    if new.max_pixels < 0 or not new.max_seconds >= 0:
        raise CombinerError("decode limits must be 0 (no limit) or positive")
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    stack.append(new)
    try:
        yield new
    finally:
        stack.pop()


def check_image(h: int, w: int, limits: Limits | None = None) -> None:
    lim = limits or current()
    px = h * w
    if lim.max_pixels and px > lim.max_pixels:
        raise DecodeLimitError(
            f"the file declares a {w}x{h} image ({px:,} pixels), above the decode limit of "
            f"{lim.max_pixels:,} pixels; to decode it anyway pass --max-pixels {px} "
            f"(or set {ENV_PIXELS}={px})", "pixels", px, lim.max_pixels, px)


def check_audio(samples: int, channels: int, rate: int, limits: Limits | None = None) -> None:
    lim = limits or current()
    if not lim.max_seconds:
        return
    seconds = samples / rate
    equiv = samples * channels / SAMPLES_PER_SECOND   # seconds of 48 kHz stereo
    needed = max(seconds, equiv)
    if needed > lim.max_seconds:
        import math

        ask = math.ceil(needed)
        raise DecodeLimitError(
            f"the file declares {seconds:,.1f} s of audio ({channels} channel(s) at {rate} Hz, "
            f"{samples * channels:,} samples), above the decode limit of {lim.max_seconds:g} s "
            f"(counted as 48 kHz stereo, {int(lim.max_seconds * SAMPLES_PER_SECOND):,} samples); to decode it "
            f"anyway pass --max-seconds {ask} (or set {ENV_SECONDS}={ask})", "seconds", needed,
            lim.max_seconds, ask)


def check_header(hdr, limits: Limits | None = None) -> None:
    """Raise DecodeLimitError if decoding this container header would exceed the limits in force."""
    if hdr.modality == "audio":
        n, c, sr = hdr.shape[:3]
        check_audio(n, c, sr, limits)
    else:
        check_image(hdr.shape[0], hdr.shape[1], limits)


def check_file(data: bytes, limits: Limits | None = None):
    """Parse a `.cmb` file's header (container.read) and check it -> the header. Raises CmbFormatError or
    DecodeLimitError."""
    from . import container

    hdr = container.read_header(bytes(data))
    check_header(hdr, limits)
    return hdr
