"""The `.cmb` container: reading and writing, independent of the codec's mathematics.

Layout (all multi-byte integers are unsigned LEB128 varints; see docs/cmb-format.md):
    magic 0xCB | version<<4 | kind | shape varints | prior id (3 bytes) | seed varint | kappa (1 byte)
    | block count varint | indices, kappa bits each, LSB-first bit-packed, zero-padded to a byte
    | CRC-16/CCITT (2 bytes, little-endian) of everything before it.
Kinds: 1..4 image with 1..4 channels (shape H, W); 8 audio (shape: samples, channels, sample rate, then
the number of coded units, i.e. chunk INRs). The payload holds units x block count indices, unit-major.
Kind 9, a patch-coded image: H, W, channels, patch side varints; prior id, seed, kappa as above; then the
block-count classes (count L, then L varints) instead of one block count, the class of each patch (row-major,
ceil(log2 L) bits each, LSB-first, byte-padded; absent when L = 1) and, for 2- and 4-channel images, the
alpha plane (varint length, then zlib-compressed bytes); then each patch's indices in turn.
Kind 10, level-normalised audio with blocks by content: samples, channels, sample rate, units; prior id, seed,
kappa; the clip gain (zigzag varint, audio_gain.GAIN_STEP_DB steps; 0 with every unit silent for a silent
clip); then block-count classes and the class of every unit exactly as kind 9 (a class may hold 0 blocks: a
silent unit); then each unit's indices in turn.
Kind 11, a patch-coded image whose shared network is adapted to the image (engine.hierarchy): kind 9's fields,
then the delta's prior scales (count S, then S bytes, one per network layer) and its block count (varint);
the payload holds the delta's indices first, then each patch's indices in turn.
Kind 12, level-normalised audio whose shared network is adapted to the clip: kind 10's fields, then the delta
fields exactly as kind 11 (scales, block count); the payload holds the delta's indices first, then each unit's.
Kinds 13 and 14, audio with a chunk envelope (engine/audio_envelope.py): kind 10's (13) or kind 12's (14)
fields, then the envelope code of every unit that has blocks, in unit order, ENV_BITS bits each, LSB-first,
byte-padded; the payload as kind 10's or 12's.
Kind 15, a patch-coded image whose shared network is adapted group by group (engine.hierarchy): kind 9's fields,
then a flags varint (bit 0: an image-level delta under the groups; bit 1: spectral floors; bit 2: Wiener filters;
other bits are refused), the group side G (varint, in patches), the delta layer count S (varint), with flag bit 0
the image delta's S scale bytes and block count (varint), and, for each group of G x G patches in row-major order,
its S scale bytes and block count (varint); with flag bit 1 then the image_floors.N_CODES spectral-floor codes,
image_floors.BITS bits each, LSB-first, byte-padded (engine/image_floors.py); with flag bit 2 then the Wiener
filters' field, its length in bytes (varint) and that many bytes (engine/image_wiener.py); the payload holds the
image delta's indices (with bit 0), then the groups' delta indices (group by group), then each patch's indices in
turn.
Kind 5, audio with optional parts named by flags: kind 10's fields, then a flags varint (bit 0: a clip-level network
delta; bit 1: a chunk envelope; bit 2: band gains; other bits are refused), then the delta fields as kind 12
(bit 0), the envelope codes as kind 13 (bit 1) and, with bit 2, the band-gain set s (varint, an index into
engine/audio_bands.SETS) and its codes, s.bits bits each, LSB-first, byte-padded: for each channel, one floor
code per band if s has noise floors, then for each of its ceil(K / s.segment) segments (K = units / channels),
one code per band. Writers use kind 5 only for files with band gains; the payload is as kind 12's.
"""
from __future__ import annotations

import binascii
from dataclasses import dataclass

import numpy as np

from . import image_floors, image_wiener
from .errors import CmbFormatError

MAGIC = 0xCB
VERSION = 1
KIND_AUDIO = 8
KIND_PATCHES = 9
KIND_AUDIO_GAIN = 10
KIND_PATCHES_DELTA = 11
KIND_AUDIO_DELTA = 12
KIND_AUDIO_ENV = 13
KIND_AUDIO_ENV_DELTA = 14
KIND_PATCHES_GROUPS = 15
KIND_AUDIO_FLAGS = 5
AUDIO_FLAG_DELTA, AUDIO_FLAG_ENVELOPE, AUDIO_FLAG_BANDS = 1, 2, 4
MAX_DELTA_LAYERS = 16   # kind-11/12 delta scales (one per network layer)
MAX_DELTA_BLOCKS = 1 << 16
MAX_DELTA_GROUPS = 1 << 16   # kind-15 delta groups in one image
GROUP_FLAG_TOP = 1       # kind-15 flags: an image-level delta under the group deltas (three levels)
GROUP_FLAG_FLOORS = 2    # kind-15 flags: spectral floors (engine/image_floors.py) after the delta fields
GROUP_FLAG_WIENER = 4    # kind-15 flags: Wiener filters (engine/image_wiener.py) after the floors
MAX_SIDE = 1 << 16      # image side limit of patch-coded files (a corrupt size cannot ask for more)
MAX_AUDIO_UNITS = 1 << 22   # kind-10 audio units (58 hours of mono 16 kHz speech in 800-sample chunks)
ID_BYTES = 3
CRC_BYTES = 2
_CHUNK = 1 << 20        # indices packed/unpacked at a time (a multiple of 8)


@dataclass(frozen=True)
class CmbHeader:
    modality: str               # "image" | "audio"
    shape: tuple[int, ...]      # image: (H, W, C); audio: (samples, channels, sample_rate)
    prior_id: bytes             # first ID_BYTES of the prior's SHA-256 id
    seed: int
    kappa: int
    n_blocks: int               # blocks (indices) per unit
    units: int = 1              # INRs in the file: 1 for images; chunks x channels for audio; patches
    patch: int = 0              # patch-coded images: the patch side (0 for other kinds)
    class_blocks: tuple[int, ...] = ()   # patch-coded images: blocks of each class
    unit_class: tuple[int, ...] = ()     # patch-coded images: class of each patch, row-major
    alpha: bytes = b""          # patch-coded 2/4-channel images: zlib-compressed alpha plane
    gain: int | None = None     # kind-10 audio: the clip's gain code (audio_gain); None for the older kind 8
    delta_scales: tuple[int, ...] = ()   # kind 11/12: the network delta prior's scale code of each layer
    delta_blocks: int = 0       # kind 11/12: blocks of the image's or clip's network delta (coded before the units)
    envelope: tuple[int, ...] | None = None   # kind 13/14 audio: each unit's chunk-envelope code (0 for a unit
                                              # with no blocks); None for the kinds without one
    delta_group: int = 0        # kind 15: side, in patches, of a group with a network delta of its own (0: other kinds)
    group_deltas: tuple[tuple[tuple[int, ...], int], ...] = ()   # kind 15: (scale codes, blocks) of each group,
                                              # row-major; delta_blocks is their blocks' sum
    top_delta: tuple[tuple[int, ...], int] = ((), 0)   # kind 15 with flag bit 0: (scale codes, blocks) of the
                                              # image-level delta under the groups' (its blocks in delta_blocks)
    bands: tuple[int, ...] | None = None      # kind 5 audio with flag bit 2: the band-gain codes (audio_bands),
                                              # channel by channel, segment by segment, band by band; None: none
    band_set: int = 0                         # kind 5 with flag bit 2: the set the codes belong to (audio_bands.SETS)
    floors: tuple[int, ...] | None = None     # kind 15 with flag bit 1: the image's spectral-floor codes
                                              # (image_floors: per plane the floors, then the gains); None: none
    wiener: tuple[tuple[int, ...], ...] | None = None   # kind 15 with flag bit 2: the Wiener filters'
                                              # coefficients (image_wiener: FILTERS rows, zeros: absent); None: none

    @property
    def unit_blocks(self) -> list[int]:
        """Blocks of each unit."""
        if self.class_blocks:
            return [self.class_blocks[k] for k in self.unit_class]
        return [self.n_blocks] * self.units

    @property
    def n_groups(self) -> tuple[int, int]:
        """Kind 15: (rows, cols) of the delta groups over the patch grid."""
        return group_grid(-(-self.shape[0] // self.patch), -(-self.shape[1] // self.patch), self.delta_group)

    @property
    def n_indices(self) -> int:
        """Indices in the payload: the delta's (kind 11/12) or the groups' (kind 15) and every unit's."""
        return self.delta_blocks + (sum(self.unit_blocks) if self.class_blocks else self.units * self.n_blocks)


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

    def codes(self, n: int, bits: int, what: str) -> np.ndarray:
        """The next n codes of `bits` bits each (packed LSB-first, byte-padded) -> (n,) int64."""
        nbytes = (n * bits + 7) // 8
        if self.pos + nbytes > len(self.data):
            raise CmbFormatError(f"truncated .cmb file: it ends inside the {what}")
        out = unpack_indices(self.data[self.pos:self.pos + nbytes], n, bits).astype(np.int64) if n else \
            np.zeros(0, dtype=np.int64)
        self.pos += nbytes
        return out


def pack_indices(indices: np.ndarray, bits: int) -> bytes:
    """(n,) ints < 2**bits -> ceil(n*bits/8) bytes, LSB-first."""
    idx = np.asarray(indices, dtype=np.uint64).reshape(-1)
    if idx.size and int(idx.max()) >> bits:
        raise ValueError(f"index does not fit in {bits} bits")
    # In chunks of a multiple of 8 indices (a whole number of bytes each): temporaries stay bounded.
    parts = []
    for s in range(0, max(1, idx.size), _CHUNK):
        part = idx[s:s + _CHUNK]
        bitarr = ((part[:, None] >> np.arange(bits, dtype=np.uint64)) & 1).astype(np.uint8).reshape(-1)
        parts.append(np.packbits(bitarr, bitorder="little").tobytes())
    return b"".join(parts)


def unpack_indices(data: bytes, n: int, bits: int) -> np.ndarray:
    """Inverse of pack_indices -> (n,) int64. Memory: the result plus a few chunk-sized temporaries."""
    buf = np.frombuffer(data, dtype=np.uint8)
    if n * bits > 8 * buf.size:
        raise ValueError(f"{buf.size} bytes cannot hold {n} indices of {bits} bits")
    out = np.empty(n, dtype=np.int64)
    if n == 0:
        return out
    if bits > 56:  # wider than one 8-byte gather can hold after the bit shift
        bitarr = np.unpackbits(buf, bitorder="little")[: n * bits]
        weights = (np.uint64(1) << np.arange(bits, dtype=np.uint64))
        return (bitarr.reshape(n, bits).astype(np.uint64) * weights).sum(1).astype(np.int64)
    padded = np.zeros(buf.size + 8, dtype=np.uint8)
    padded[:buf.size] = buf
    span = (bits + 7 + 7) // 8              # bytes an index can touch (it starts at any bit of a byte)
    mask = np.uint64((1 << bits) - 1)
    for s in range(0, n, _CHUNK):
        bit = np.arange(s, min(n, s + _CHUNK), dtype=np.uint64) * np.uint64(bits)
        byte = (bit >> np.uint64(3)).astype(np.int64)
        v = np.zeros(byte.size, dtype=np.uint64)
        for k in range(span):
            v |= padded[byte + k].astype(np.uint64) << np.uint64(8 * k)
        out[s:s + byte.size] = ((v >> (bit & np.uint64(7))) & mask).astype(np.int64)
    return out


def payload_bytes(n_blocks: int, kappa: int) -> int:
    return (n_blocks * kappa + 7) // 8


def header_bytes(h: CmbHeader) -> bytes:
    out = bytearray([MAGIC])
    if h.patch:
        return _patch_header_bytes(h, out)
    if h.modality == "audio" and h.gain is not None:
        return _gain_audio_header_bytes(h, out)
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
    _put_prior_seed_kappa(out, h)
    _put_varint(out, h.n_blocks)
    return bytes(out)


def class_bits(n_classes: int) -> int:
    return (n_classes - 1).bit_length()


def patch_units(hh: int, ww: int, patch: int) -> int:
    return -(-hh // patch) * -(-ww // patch)


def group_grid(rows: int, cols: int, side: int) -> tuple[int, int]:
    """A patch grid (rows, cols) cut into groups of side x side patches -> (rows, cols) of the groups (kind 15;
    the last row and column of groups hold what is left)."""
    return -(-rows // side), -(-cols // side)


def _put_prior_seed_kappa(out: bytearray, h: CmbHeader) -> None:
    """The fields every kind shares after its shape: prior id (3 bytes), seed (varint), kappa (1 byte)."""
    if len(h.prior_id) != ID_BYTES:
        raise ValueError("prior id must be 3 bytes")
    out += h.prior_id
    _put_varint(out, h.seed)
    out.append(h.kappa)


def _read_prior_seed_kappa(r: "_Reader") -> tuple[bytes, int, int]:
    pid = bytes(r.byte("prior id") for _ in range(ID_BYTES))
    seed = r.varint("seed")
    kappa = r.byte("kappa")
    if not 1 <= kappa <= 24:
        raise CmbFormatError(f"corrupt .cmb header: kappa {kappa} out of range")
    return pid, seed, kappa


def _zigzag(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


def _unzigzag(u: int) -> int:
    return u >> 1 if not u & 1 else -((u + 1) >> 1)


def _put_classes(out: bytearray, class_blocks, unit_class, lowest: int) -> None:
    if not class_blocks or min(class_blocks) < lowest:   # encoders write them ascending (size probes repeat)
        raise ValueError("bad block-count classes")
    if len(unit_class) and max(unit_class) >= len(class_blocks):
        raise ValueError("a unit names a class that does not exist")
    _put_varint(out, len(class_blocks))
    for v in class_blocks:
        _put_varint(out, v)
    if len(class_blocks) > 1:
        out += pack_indices(np.asarray(unit_class), class_bits(len(class_blocks)))


def _read_classes(r: "_Reader", data: bytes, units: int, kappa: int, lowest: int, noun: tuple[str, str]
                  ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Class table and per-unit classes (kinds 9 and 10), validated before anything of size `units` is built."""
    n_cls = r.varint("class count")
    if not 1 <= n_cls <= 256:
        raise CmbFormatError(f"corrupt .cmb header: {n_cls} block-count classes")
    blocks = tuple(r.varint("class blocks") for _ in range(n_cls))
    if min(blocks) < lowest or max(blocks) > 1 << 20:
        raise CmbFormatError("corrupt .cmb header: a block-count class is out of range")
    if payload_bytes(units * min(blocks), kappa) > len(data):  # before anything of size `units` is built
        raise CmbFormatError(f"truncated .cmb file: {len(data)} bytes cannot hold {units} {noun[1]}")
    if n_cls > 1:
        nbytes = (units * class_bits(n_cls) + 7) // 8
        if r.pos + nbytes > len(data):
            raise CmbFormatError(f"truncated .cmb file: it ends inside the {noun[0]} classes")
        cls = unpack_indices(data[r.pos:r.pos + nbytes], units, class_bits(n_cls))
        r.pos += nbytes
        if cls.max() >= n_cls:
            raise CmbFormatError(f"corrupt .cmb header: a {noun[0]} names a class that does not exist")
        return blocks, tuple(int(k) for k in cls)
    return blocks, (0,) * units


def _gain_audio_header_bytes(h: CmbHeader, out: bytearray) -> bytes:
    n, c, sr = h.shape
    if min(n, c, sr, h.units) < 1 or len(h.unit_class) != h.units:
        raise ValueError("audio needs samples, channels, rate and one class per unit")
    delta = _check_delta(h)
    env = h.envelope is not None
    if h.bands is not None:
        kind = KIND_AUDIO_FLAGS
    else:
        kind = ((KIND_AUDIO_ENV_DELTA if delta else KIND_AUDIO_ENV) if env else
                (KIND_AUDIO_DELTA if delta else KIND_AUDIO_GAIN))
    out.append(VERSION << 4 | kind)
    for v in (n, c, sr, h.units):
        _put_varint(out, v)
    _put_prior_seed_kappa(out, h)
    _put_varint(out, _zigzag(h.gain))
    _put_classes(out, h.class_blocks, h.unit_class, lowest=0)
    if kind == KIND_AUDIO_FLAGS:
        _put_varint(out, (AUDIO_FLAG_DELTA if delta else 0) | (AUDIO_FLAG_ENVELOPE if env else 0) | AUDIO_FLAG_BANDS)
    if delta:
        _put_delta(out, h)
    if env:
        _put_envelope(out, h)
    if h.bands is not None:
        _put_bands(out, h)
    return bytes(out)


def _put_bands(out: bytearray, h: CmbHeader) -> None:
    from . import audio_bands

    codes = np.asarray(h.bands, dtype=np.int64)
    if not 0 <= h.band_set < len(audio_bands.SETS):
        raise ValueError("bad band gains: unknown set")
    bs = audio_bands.SETS[h.band_set]
    if (h.units % h.shape[1] or len(codes) != bs.n_codes(h.units, h.shape[1])
            or (len(codes) and (codes.min() < 0 or codes.max() >= len(bs.gains)))):
        raise ValueError("bad band gains: one code in range per channel, segment and band")
    _put_varint(out, h.band_set)
    out += pack_indices(codes, bs.bits)


def _read_bands(r: "_Reader", units: int, channels: int) -> tuple[int, tuple[int, ...]]:
    """-> (set, codes) of kind-5 band gains."""
    from . import audio_bands

    k = r.varint("band-gain set")
    if k >= len(audio_bands.SETS):
        raise CmbFormatError(f"corrupt .cmb header: unknown band-gain set {k}")
    if units % channels:
        raise CmbFormatError(f"corrupt .cmb header: {units} units for {channels} channels")
    bs = audio_bands.SETS[k]
    return k, tuple(int(c) for c in r.codes(bs.n_codes(units, channels), bs.bits, "band gains"))


def _put_envelope(out: bytearray, h: CmbHeader) -> None:
    from .audio_envelope import ENV_BITS, ENV_CODES

    codes = np.asarray(h.envelope, dtype=np.int64)
    on = np.asarray(h.unit_blocks) > 0
    if len(codes) != h.units or (len(codes) and (codes.min() < 0 or codes.max() >= ENV_CODES)) or codes[~on].any():
        raise ValueError("bad chunk envelope: one code in range per unit, 0 for a unit without blocks")
    if on.any():
        out += pack_indices(codes[on], ENV_BITS)


def _read_envelope(r: "_Reader", unit_blocks: list[int]) -> tuple[int, ...]:
    from .audio_envelope import ENV_BITS

    on = np.asarray(unit_blocks) > 0
    n = int(on.sum())
    codes = np.zeros(len(on), dtype=np.int64)
    codes[on] = r.codes(n, ENV_BITS, "chunk envelope")
    return tuple(int(k) for k in codes)


def _check_delta(h: CmbHeader) -> bool:
    """Whether the header carries a network delta (kind 11/12); ValueError on inconsistent delta fields."""
    delta = bool(h.delta_scales)
    if delta and not (1 <= h.delta_blocks <= MAX_DELTA_BLOCKS and len(h.delta_scales) <= MAX_DELTA_LAYERS
                      and all(0 <= v <= 255 for v in h.delta_scales)):
        raise ValueError("bad network delta fields")
    if h.delta_blocks and not delta and not h.group_deltas:
        raise ValueError("delta blocks without delta scales")
    return delta


def _put_delta(out: bytearray, h: CmbHeader) -> None:
    _put_varint(out, len(h.delta_scales))
    out += bytes(h.delta_scales)
    _put_varint(out, h.delta_blocks)


def _read_delta(r: "_Reader") -> tuple[tuple[int, ...], int]:
    """-> (scale codes, blocks) of a kind-11/12 network delta."""
    n_scales = r.varint("delta layer count")
    if not 1 <= n_scales <= MAX_DELTA_LAYERS:
        raise CmbFormatError(f"corrupt .cmb header: {n_scales} delta layers")
    scales = tuple(r.byte("delta scales") for _ in range(n_scales))
    n_delta = r.varint("delta blocks")
    if not 1 <= n_delta <= MAX_DELTA_BLOCKS:
        raise CmbFormatError(f"corrupt .cmb header: {n_delta} delta blocks")
    return scales, n_delta


def _read_gain_audio_header(r: "_Reader", data: bytes, delta: bool = False, env: bool = False,
                            flags: bool = False) -> CmbHeader:
    shape = (r.varint("samples"), r.varint("channels"), r.varint("sample rate"))
    units = r.varint("units")
    if min(shape) < 1 or units < 1:
        raise CmbFormatError("corrupt .cmb header: audio length, channels, rate or unit count is zero")
    if units > MAX_AUDIO_UNITS:   # silent units cost no bytes: bound what a small file can declare
        raise CmbFormatError(f"corrupt .cmb header: {units} units (at most {MAX_AUDIO_UNITS})")
    pid, seed, kappa = _read_prior_seed_kappa(r)
    gain = _unzigzag(r.varint("gain"))
    from .audio_gain import code_range

    lo, hi = code_range()
    if not lo <= gain <= hi:
        raise CmbFormatError(f"corrupt .cmb header: gain code {gain} out of range")
    blocks, unit_class = _read_classes(r, data, units, kappa, 0, ("unit", "units"))
    bands = False
    if flags:
        f = r.varint("flags")
        if f & ~(AUDIO_FLAG_DELTA | AUDIO_FLAG_ENVELOPE | AUDIO_FLAG_BANDS):
            raise CmbFormatError(f"corrupt .cmb header: unknown audio flags {f}")
        delta, env, bands = bool(f & AUDIO_FLAG_DELTA), bool(f & AUDIO_FLAG_ENVELOPE), bool(f & AUDIO_FLAG_BANDS)
    scales, n_delta = _read_delta(r) if delta else ((), 0)
    envelope = _read_envelope(r, [blocks[k] for k in unit_class]) if env else None
    band_set, codes = _read_bands(r, units, shape[1]) if bands else (0, None)
    return CmbHeader("audio", shape, pid, seed, kappa, max(blocks), units, 0, blocks, unit_class, b"", gain,
                     scales, n_delta, envelope, bands=codes, band_set=band_set)


def _patch_header_bytes(h: CmbHeader, out: bytearray) -> bytes:
    hh, ww, c = h.shape
    if not 1 <= c <= 4 or not (1 <= hh <= MAX_SIDE and 1 <= ww <= MAX_SIDE):
        raise ValueError("patch images have 1 to 4 channels and sides up to 65536")
    if h.units != patch_units(hh, ww, h.patch) or len(h.unit_class) != h.units:
        raise ValueError("one class per patch is required")
    if not h.class_blocks or min(h.class_blocks) < 1 or max(h.unit_class) >= len(h.class_blocks):
        raise ValueError("bad block-count classes")
    delta = _check_delta(h)
    groups = _check_groups(h)
    out.append(VERSION << 4 | (KIND_PATCHES_GROUPS if groups else KIND_PATCHES_DELTA if delta else KIND_PATCHES))
    for v in (hh, ww, c, h.patch):
        _put_varint(out, v)
    _put_prior_seed_kappa(out, h)
    _put_classes(out, h.class_blocks, h.unit_class, lowest=1)
    if c in (2, 4):
        _put_varint(out, len(h.alpha))
        out += h.alpha
    if delta:
        _put_delta(out, h)
    if groups:
        _put_varint(out, (GROUP_FLAG_TOP if h.top_delta[1] else 0) | (GROUP_FLAG_FLOORS if h.floors else 0)
                    | (GROUP_FLAG_WIENER if h.wiener is not None else 0))
        _put_varint(out, h.delta_group)
        _put_varint(out, len(h.group_deltas[0][0]))
        for scales, blocks in ((h.top_delta,) if h.top_delta[1] else ()) + h.group_deltas:
            out += bytes(scales)
            _put_varint(out, blocks)
        if h.floors:
            out += pack_indices(np.asarray(h.floors, dtype=np.int64), image_floors.BITS)
        if h.wiener is not None:
            field = image_wiener.pack(h.wiener)
            _put_varint(out, len(field))
            out += field
    elif h.floors is not None or h.wiener is not None:
        raise ValueError("spectral floors and Wiener filters need kind 15 (group deltas)")
    return bytes(out)


def _check_groups(h: CmbHeader) -> bool:
    """Whether the header carries group deltas (kind 15); ValueError on inconsistent group fields."""
    if not h.delta_group and not h.group_deltas:
        if h.top_delta[0] or h.top_delta[1]:
            raise ValueError("an image-level delta under groups needs group deltas")
        return False
    if h.delta_scales or h.delta_group < 1:
        raise ValueError("group deltas need a group side and no image-level delta")
    gr, gc = h.n_groups
    if len(h.group_deltas) != gr * gc or gr * gc > MAX_DELTA_GROUPS:
        raise ValueError("one delta per group is required")
    n_layers = len(h.group_deltas[0][0])
    if not 1 <= n_layers <= MAX_DELTA_LAYERS or any(
            len(s) != n_layers or not all(0 <= v <= 255 for v in s) or not 1 <= b <= MAX_DELTA_BLOCKS
            for s, b in h.group_deltas):
        raise ValueError("bad group delta fields")
    if h.floors is not None and (len(h.floors) != image_floors.N_CODES
                                 or not all(0 <= v < 1 << image_floors.BITS for v in h.floors)):
        raise ValueError("bad spectral floors: one code in range per plane, band and kind")
    if h.wiener is not None and not np.asarray(h.wiener).any():
        raise ValueError("Wiener filters with no filter present: leave the field out instead")
    top_scales, top_blocks = h.top_delta
    if top_blocks and not (len(top_scales) == n_layers and 1 <= top_blocks <= MAX_DELTA_BLOCKS
                           and all(0 <= v <= 255 for v in top_scales)) or bool(top_scales) != bool(top_blocks):
        raise ValueError("bad image-level delta fields")
    if h.delta_blocks != top_blocks + sum(b for _, b in h.group_deltas):
        raise ValueError("delta blocks must be the groups' (and the image delta's) sum")
    return True


def _read_groups(r: "_Reader", hh: int, ww: int, patch: int) -> tuple[int, tuple, tuple, tuple | None]:
    """-> (group side, ((scale codes, blocks) per group), (scale codes, blocks) of the image-level delta or
    ((), 0), spectral-floor codes or None, Wiener filters or None) of a kind-15 header."""
    flags = r.varint("delta group flags")
    if flags & ~(GROUP_FLAG_TOP | GROUP_FLAG_FLOORS | GROUP_FLAG_WIENER):
        raise CmbFormatError(f"corrupt .cmb header: delta group flags {flags} (this program knows bits 0 to 2)")
    side = r.varint("delta group side")
    if not 1 <= side <= MAX_SIDE:
        raise CmbFormatError(f"corrupt .cmb header: delta group side {side}")
    gr, gc = group_grid(-(-hh // patch), -(-ww // patch), side)
    n = gr * gc
    if n > MAX_DELTA_GROUPS:
        raise CmbFormatError(f"corrupt .cmb header: {n} delta groups")
    n_scales = r.varint("delta layer count")
    if not 1 <= n_scales <= MAX_DELTA_LAYERS:
        raise CmbFormatError(f"corrupt .cmb header: {n_scales} delta layers")
    groups = []
    for _ in range(n + (1 if flags & GROUP_FLAG_TOP else 0)):
        scales = tuple(r.byte("delta scales") for _ in range(n_scales))
        blocks = r.varint("delta blocks")
        if not 1 <= blocks <= MAX_DELTA_BLOCKS:
            raise CmbFormatError(f"corrupt .cmb header: {blocks} delta blocks")
        groups.append((scales, blocks))
    codes = (tuple(int(v) for v in r.codes(image_floors.N_CODES, image_floors.BITS, "spectral floors"))
             if flags & GROUP_FLAG_FLOORS else None)
    wiener = _read_wiener(r) if flags & GROUP_FLAG_WIENER else None
    if flags & GROUP_FLAG_TOP:
        return side, tuple(groups[1:]), groups[0], codes, wiener
    return side, tuple(groups), ((), 0), codes, wiener


def _read_wiener(r: "_Reader") -> tuple[tuple[int, ...], ...]:
    """A kind-15 header's Wiener filter field (length varint, then the bytes) -> its coefficient rows."""
    n = r.varint("Wiener filter length")
    if r.pos + n > len(r.data):
        raise CmbFormatError("truncated .cmb file: it ends inside the Wiener filters")
    try:
        q = image_wiener.unpack(r.data[r.pos:r.pos + n])
    except ValueError as e:
        raise CmbFormatError(f"corrupt .cmb header: {e}") from None
    r.pos += n
    return tuple(tuple(int(v) for v in row) for row in q)


def _read_patch_header(r: "_Reader", data: bytes, delta: bool = False, groups: bool = False) -> CmbHeader:
    hh, ww, c, patch = r.varint("height"), r.varint("width"), r.varint("channels"), r.varint("patch side")
    if not (1 <= hh <= MAX_SIDE and 1 <= ww <= MAX_SIDE) or not 1 <= c <= 4 or not 1 <= patch <= 4096:
        raise CmbFormatError(f"corrupt .cmb header: image {ww}x{hh}x{c}, patch {patch}")
    pid, seed, kappa = _read_prior_seed_kappa(r)
    units = patch_units(hh, ww, patch)
    blocks, unit_class = _read_classes(r, data, units, kappa, 1, ("patch", "patches"))
    alpha = b""
    if c in (2, 4):
        n_alpha = r.varint("alpha length")
        if r.pos + n_alpha > len(data):
            raise CmbFormatError("truncated .cmb file: it ends inside the alpha plane")
        alpha = bytes(data[r.pos:r.pos + n_alpha])
        r.pos += n_alpha
    scales, n_delta = _read_delta(r) if delta else ((), 0)
    side, gd, top, fl, wf = _read_groups(r, hh, ww, patch) if groups else (0, (), ((), 0), None, None)
    n_delta = top[1] + sum(b for _, b in gd) if groups else n_delta
    return CmbHeader("image", (hh, ww, c), pid, seed, kappa, max(blocks), units, patch, blocks, unit_class, alpha,
                     delta_scales=scales, delta_blocks=n_delta, delta_group=side, group_deltas=gd, top_delta=top,
                     floors=fl, wiener=wf)


def write(h: CmbHeader, indices: np.ndarray) -> bytes:
    """Header + packed indices + CRC -> the complete file contents."""
    if len(indices) != h.n_indices:
        raise ValueError("one index per block and unit is required")
    body = header_bytes(h) + pack_indices(indices, h.kappa)
    out = body + binascii.crc_hqx(body, 0).to_bytes(CRC_BYTES, "little")
    _check_readable(h, out)
    return out


def _check_readable(h: CmbHeader, data: bytes) -> None:
    """The writer holds itself to the reader's limits: a file it writes must read back to the same header."""
    try:
        back = read_header(data)
    except CmbFormatError as e:
        raise CmbFormatError(f"cannot write this header: a field is outside the format's range ({e})") from None
    if back != h:
        raise CmbFormatError("cannot write this header: it does not read back the same (a field is out of range)")


def varint_fits(v: int) -> bool:
    """Whether the reader accepts `v` as a varint field (e.g. a seed)."""
    if v < 0:
        return False
    out = bytearray()
    _put_varint(out, v)
    try:
        return _Reader(bytes(out)).varint("value") == v
    except CmbFormatError:
        return False


def read_header(data: bytes) -> CmbHeader:
    """Parse and check a complete file (length, checksum) without unpacking its indices -> the header."""
    return read(data, indices=False)[0]


def read(data: bytes, indices: bool = True) -> tuple[CmbHeader, np.ndarray | None]:
    """Parse a complete file. Raises CmbFormatError with a readable message on any defect. With
    `indices=False` the payload is checked (length, checksum) but not unpacked (None is returned for it)."""
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
    if kind in (KIND_PATCHES, KIND_PATCHES_DELTA, KIND_PATCHES_GROUPS):
        hdr = _read_patch_header(r, data, delta=kind == KIND_PATCHES_DELTA, groups=kind == KIND_PATCHES_GROUPS)
        return hdr, _payload(data, r.pos, hdr.n_indices, hdr.kappa, indices)
    if kind in (KIND_AUDIO_GAIN, KIND_AUDIO_DELTA, KIND_AUDIO_ENV, KIND_AUDIO_ENV_DELTA, KIND_AUDIO_FLAGS):
        hdr = _read_gain_audio_header(r, data, delta=kind in (KIND_AUDIO_DELTA, KIND_AUDIO_ENV_DELTA),
                                      env=kind in (KIND_AUDIO_ENV, KIND_AUDIO_ENV_DELTA),
                                      flags=kind == KIND_AUDIO_FLAGS)
        return hdr, _payload(data, r.pos, hdr.n_indices, hdr.kappa, indices)
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
    pid, seed, kappa = _read_prior_seed_kappa(r)
    nb = r.varint("block count")
    return CmbHeader(modality, shape, pid, seed, kappa, nb, units), _payload(data, r.pos, nb * units, kappa, indices)


def _payload(data: bytes, pos: int, n: int, kappa: int, unpack: bool = True) -> np.ndarray | None:
    """Check length and checksum, then unpack the n indices that start at `pos`."""
    need = pos + payload_bytes(n, kappa) + CRC_BYTES
    if len(data) < need:
        raise CmbFormatError(f"truncated .cmb file: {len(data)} bytes, the header announces {need}")
    if len(data) > need:
        raise CmbFormatError(f"corrupt .cmb file: {len(data) - need} unexpected bytes after the data")
    body, crc = data[:-CRC_BYTES], int.from_bytes(data[-CRC_BYTES:], "little")
    if binascii.crc_hqx(body, 0) != crc:
        raise CmbFormatError("corrupt .cmb file: checksum mismatch")
    if not unpack:
        return None
    return unpack_indices(data[pos:-CRC_BYTES], n, kappa)
