"""The `.cmb` container: reading and writing, independent of the codec's mathematics.

Layout (all multi-byte integers are unsigned LEB128 varints; see docs/cmb-format.md):
    magic 0xCB | version<<4 | kind | shape varints | prior id (3 bytes) | seed varint | kappa (1 byte)
    | block count varint | indices, kappa bits each, LSB-first bit-packed, zero-padded to a byte
    | CRC-16/CCITT (2 bytes, little-endian) of everything before it.
Kinds: 1..4 image with 1..4 channels (shape H, W); 8 audio (shape: samples, channels, sample rate, then
the number of coded units, i.e. chunk INRs). The payload holds units x block count indices, unit-major.
"""
from __future__ import annotations

import binascii
from dataclasses import dataclass

import numpy as np

from .errors import CmbFormatError

MAGIC = 0xCB
VERSION = 1
KIND_AUDIO = 8
ID_BYTES = 3
CRC_BYTES = 2


@dataclass(frozen=True)
class CmbHeader:
    modality: str               # "image" | "audio"
    shape: tuple[int, ...]      # image: (H, W, C); audio: (samples, channels, sample_rate)
    prior_id: bytes             # first ID_BYTES of the prior's SHA-256 id
    seed: int
    kappa: int
    n_blocks: int               # blocks (indices) per unit
    units: int = 1              # INRs in the file: 1 for images; chunks x channels for audio

    @property
    def n_indices(self) -> int:
        return self.units * self.n_blocks


def _put_varint(out: bytearray, v: int) -> None:
    if v < 0:
        raise ValueError("varint must be non-negative")
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def byte(self, what: str) -> int:
        if self.pos >= len(self.data):
            raise CmbFormatError(f"truncated .cmb file: it ends inside the header ({what})")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def varint(self, what: str) -> int:
        v = shift = 0
        while True:
            b = self.byte(what)
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                return v
            shift += 7
            if shift > 63:
                raise CmbFormatError(f"corrupt .cmb header: field '{what}' is too long")


def pack_indices(indices: np.ndarray, bits: int) -> bytes:
    """(n,) ints < 2**bits -> ceil(n*bits/8) bytes, LSB-first."""
    idx = np.asarray(indices, dtype=np.uint64)
    if idx.size and int(idx.max()) >> bits:
        raise ValueError(f"index does not fit in {bits} bits")
    bitarr = ((idx[:, None] >> np.arange(bits, dtype=np.uint64)) & 1).astype(np.uint8).reshape(-1)
    return np.packbits(bitarr, bitorder="little").tobytes()


def unpack_indices(data: bytes, n: int, bits: int) -> np.ndarray:
    """Inverse of pack_indices -> (n,) int64."""
    bitarr = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")[: n * bits]
    weights = (np.uint64(1) << np.arange(bits, dtype=np.uint64))
    return (bitarr.reshape(n, bits).astype(np.uint64) * weights).sum(1).astype(np.int64)


def payload_bytes(n_blocks: int, kappa: int) -> int:
    return (n_blocks * kappa + 7) // 8


def header_bytes(h: CmbHeader) -> bytes:
    out = bytearray([MAGIC])
    if h.modality == "image":
        hh, ww, c = h.shape
        if not 1 <= c <= 4:
            raise ValueError("images have 1 to 4 channels")
        if h.units != 1:
            raise ValueError("an image file holds one unit")
        out.append(VERSION << 4 | c)
        _put_varint(out, hh), _put_varint(out, ww)
    elif h.modality == "audio":
        out.append(VERSION << 4 | KIND_AUDIO)
        for v in (*h.shape, h.units):
            _put_varint(out, v)
    else:
        raise ValueError(f"unknown modality {h.modality!r}")
    if len(h.prior_id) != ID_BYTES:
        raise ValueError("prior id must be 3 bytes")
    out += h.prior_id
    _put_varint(out, h.seed)
    out.append(h.kappa)
    _put_varint(out, h.n_blocks)
    return bytes(out)


def write(h: CmbHeader, indices: np.ndarray) -> bytes:
    """Header + packed indices + CRC -> the complete file contents."""
    if len(indices) != h.n_indices:
        raise ValueError("one index per block and unit is required")
    body = header_bytes(h) + pack_indices(indices, h.kappa)
    return body + binascii.crc_hqx(body, 0).to_bytes(CRC_BYTES, "little")


def read(data: bytes) -> tuple[CmbHeader, np.ndarray]:
    """Parse a complete file. Raises CmbFormatError with a readable message on any defect."""
    if len(data) == 0:
        raise CmbFormatError("empty file: not a .cmb file")
    if data[0] != MAGIC:
        raise CmbFormatError("not a .cmb file (bad magic byte)")
    r = _Reader(data)
    r.pos = 1
    vk = r.byte("version")
    version, kind = vk >> 4, vk & 0x0F
    if version != VERSION:
        raise CmbFormatError(f"unsupported .cmb format version {version} (this program reads version {VERSION})")
    units = 1
    if 1 <= kind <= 4:
        modality, shape = "image", (r.varint("height"), r.varint("width"), kind)
        if shape[0] < 1 or shape[1] < 1:
            raise CmbFormatError("corrupt .cmb header: image size is zero")
    elif kind == KIND_AUDIO:
        modality = "audio"
        shape = (r.varint("samples"), r.varint("channels"), r.varint("sample rate"))
        units = r.varint("units")
        if min(shape) < 1 or units < 1:
            raise CmbFormatError("corrupt .cmb header: audio length, channels, rate or unit count is zero")
    else:
        raise CmbFormatError(f"corrupt .cmb header: unknown signal kind {kind}")
    pid = bytes(r.byte("prior id") for _ in range(ID_BYTES))
    seed = r.varint("seed")
    kappa = r.byte("kappa")
    if not 1 <= kappa <= 24:
        raise CmbFormatError(f"corrupt .cmb header: kappa {kappa} out of range")
    nb = r.varint("block count")
    need = r.pos + payload_bytes(nb * units, kappa) + CRC_BYTES
    if len(data) < need:
        raise CmbFormatError(f"truncated .cmb file: {len(data)} bytes, the header announces {need}")
    if len(data) > need:
        raise CmbFormatError(f"corrupt .cmb file: {len(data) - need} unexpected bytes after the data")
    body, crc = data[:-CRC_BYTES], int.from_bytes(data[-CRC_BYTES:], "little")
    if binascii.crc_hqx(body, 0) != crc:
        raise CmbFormatError("corrupt .cmb file: checksum mismatch")
    idx = unpack_indices(data[r.pos:-CRC_BYTES], nb * units, kappa)
    return CmbHeader(modality, shape, pid, seed, kappa, nb, units), idx
