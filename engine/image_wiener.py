"""Class-adaptive Wiener filters for photos: small linear filters the sender fits to the decode, a few hundred
bytes.

What the patch coder leaves behind differs with the content: a flat sky has a faint grain, an edge is blurred
across its direction, a texture is smoothed. The spectral floors (engine/image_floors.py) correct the spectrum
of the whole image at once; these filters then sort every 4x4 block of the decode into one of CLASSES by its
local activity and direction (as the adaptive loop filter of VVC does) and apply to each class the symmetric
7x7-diamond filter the sender fitted by least squares against the original. On the 24 Kodak files of the 0.5 bpp
run they add +0.13 dB after the floors for 96 bytes on average, every image better (docs/results.md, session of
2026-12-06, thirteenth).

Sender/receiver contract. Both sides start from the (H, W, 3) uint8 RGB image that the spectral floors give
(the decode itself where there are none), before gray or alpha are restored:
- classes from the integer luma M = 77 R + 150 G + 29 B, extended by one pixel by mirroring (numpy's
  'symmetric' padding): per pixel the absolute second differences |2 M - M_up - M_down| (v),
  |2 M - M_left - M_right| (h), |2 M - M_upleft - M_downright| (d1) and |2 M - M_upright - M_downleft| (d2);
  per block of BLOCK x BLOCK pixels (blocks on a grid from the top left; those on the right and bottom
  edges repeat their last pixel row or column to full size) the sums V, Hs, D1, D2 and the activity
  A = V + Hs. With the activities of all n blocks sorted, s, the thresholds are t_j = s[floor(j n / N_ACT)],
  j = 1 .. N_ACT - 1, and a block's activity class is the number of thresholds <= A. Its direction class is
  1 (V > Hs) or 2 (otherwise) if max(V, Hs) min(D1, D2) > max(D1, D2) min(V, Hs) and max(V, Hs) > 2 min(V,
  Hs); else 3 (D1 > D2) or 4 (otherwise) if max(D1, D2) > 2 min(D1, D2); else 0. The class is N_DIR times the
  activity class plus the direction class, and every pixel of the block has it;
- planes L, C1, C2: the RGB values (float64) times the orthonormal matrix OPPONENT (rows (1, 1, 1) / sqrt 3,
  (1, 0, -1) / sqrt 2, (1, -2, 1) / sqrt 6), each extended by RADIUS pixels by mirroring; for the PAIRS
  offsets (dy, dx) the features of a pixel p are f_k = p(y + dy, x + dx) + p(y - dy, x - dx) - 2 p(y, x);
- an L pixel of class c whose filter is present becomes p + STEP sum_k q[c, k] f_k (q the coded integers);
  C1 and C2 have one filter each, for all their pixels; a pixel without a filter keeps its value;
- the planes go back to RGB by OPPONENT's transpose (its inverse), are rounded and clipped to 0 .. 255.
The field (container kind 15, flag bit 2) is a bit string, most significant bit first, byte-padded with zero
bits: for each of the CLASSES L filters, then C1's and C2's, one bit (present) and, when set, its len(PAIRS)
coefficients, each as a signed exp-Golomb code of order EG_ORDER (v > 0 as 2 v - 1, v <= 0 as -2 v).
"""
from __future__ import annotations

import numpy as np

RADIUS = 3
PAIRS = tuple((dy, dx) for dy in range(RADIUS + 1) for dx in range(-RADIUS, RADIUS + 1)
              if abs(dy) + abs(dx) <= RADIUS and (dy > 0 or dx > 0))       # one of each +-(dy, dx): 12
BLOCK = 4
N_ACT, N_DIR = 5, 5
CLASSES = N_ACT * N_DIR                 # luma (L) filters; C1 and C2 have one each
FILTERS = CLASSES + 2
STEP = 1.0 / 64.0                       # coefficient quantum
MAX_Q = 1 << 12                         # |coefficient| < MAX_Q * STEP
EG_ORDER = 2
MAX_BITS = FILTERS * (1 + len(PAIRS) * (2 * 13 + 1 + EG_ORDER))   # longest field a reader accepts, in bits
PIXELS_AT_ONCE = 1 << 18                # features computed together (bounds memory on large images)
# The planes: an orthonormal opponent-colour transform (a luma and two colour differences), so that each plane's
# squared error is its share of the RGB squared error and the planes' filters can be fitted one by one.
OPPONENT = np.array([[1.0, 1.0, 1.0], [1.0, 0.0, -1.0], [1.0, -2.0, 1.0]]) / np.sqrt([[3.0], [2.0], [6.0]])


# ---- classes and features ---------------------------------------------------------------------------------

def classes(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) int64 class of every pixel, 0 .. CLASSES - 1 (see the contract)."""
    h, w = rgb.shape[:2]
    x = np.asarray(rgb, dtype=np.int64)
    q = np.pad(77 * x[..., 0] + 150 * x[..., 1] + 29 * x[..., 2], 1, mode="symmetric")
    c2 = 2 * q[1:-1, 1:-1]
    lap = [np.abs(c2 - q[:-2, 1:-1] - q[2:, 1:-1]), np.abs(c2 - q[1:-1, :-2] - q[1:-1, 2:]),
           np.abs(c2 - q[:-2, :-2] - q[2:, 2:]), np.abs(c2 - q[:-2, 2:] - q[2:, :-2])]
    hb, wb = -(-h // BLOCK), -(-w // BLOCK)
    v, hs, d1, d2 = (np.pad(a, ((0, hb * BLOCK - h), (0, wb * BLOCK - w)), mode="edge")
                     .reshape(hb, BLOCK, wb, BLOCK).sum(axis=(1, 3)) for a in lap)          # (hb, wb) each
    act = v + hs
    s = np.sort(act.ravel())
    thr = s[[(j * s.size) // N_ACT for j in range(1, N_ACT)]]
    a_cls = np.searchsorted(thr, act, side="right")
    hv_hi, hv_lo = np.maximum(v, hs), np.minimum(v, hs)
    dd_hi, dd_lo = np.maximum(d1, d2), np.minimum(d1, d2)
    d_cls = np.where((hv_hi * dd_lo > dd_hi * hv_lo) & (hv_hi > 2 * hv_lo), np.where(v > hs, 1, 2),
                     np.where(dd_hi > 2 * dd_lo, np.where(d1 > d2, 3, 4), 0))
    cls = a_cls * N_DIR + d_cls
    return np.repeat(np.repeat(cls, BLOCK, axis=0), BLOCK, axis=1)[:h, :w].astype(np.int64)


def _rows(h: int, w: int):
    """Row ranges of about PIXELS_AT_ONCE pixels."""
    step = max(1, PIXELS_AT_ONCE // max(w, 1))
    return [(a, min(h, a + step)) for a in range(0, h, step)]


def _feature(padded: np.ndarray, r0: int, r1: int, w: int, dy: int, dx: int) -> np.ndarray:
    """Rows r0 .. r1 - 1 of a plane padded by RADIUS -> (r1 - r0, w) feature of the pair (dy, dx)."""
    R = RADIUS
    return (padded[R + r0 + dy:R + r1 + dy, R + dx:R + w + dx] + padded[R + r0 - dy:R + r1 - dy, R - dx:R + w - dx]
            - 2.0 * padded[R + r0:R + r1, R:R + w])


def _features(padded: np.ndarray, r0: int, r1: int, w: int) -> np.ndarray:
    """Rows r0 .. r1 - 1 of a plane padded by RADIUS -> (r1 - r0, w, len(PAIRS)) float64 features."""
    return np.stack([_feature(padded, r0, r1, w, dy, dx) for dy, dx in PAIRS], axis=-1)


def _planes(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(rgb, dtype=np.float64) @ OPPONENT.T                          # (H, W, 3)


# ---- sender -----------------------------------------------------------------------------------------------

def _normal_equations(orig: np.ndarray, dec: np.ndarray, cls: np.ndarray):
    """Per filter the sums X^T X (FILTERS, K, K) and X^T r (FILTERS, K), r = original - decode, over its pixels."""
    h, w = dec.shape[:2]
    k = len(PAIRS)
    xtx, xtr = np.zeros((FILTERS, k, k)), np.zeros((FILTERS, k))
    for c in range(3):
        pad = np.pad(dec[..., c], RADIUS, mode="symmetric")
        for r0, r1 in _rows(h, w):
            f = _features(pad, r0, r1, w).reshape(-1, k)                  # (n, K)
            res = (orig[r0:r1, :, c] - dec[r0:r1, :, c]).ravel()          # (n,)
            if c:
                xtx[CLASSES + c - 1] += f.T @ f
                xtr[CLASSES + c - 1] += f.T @ res
                continue
            cl = cls[r0:r1].ravel()
            order = np.argsort(cl, kind="stable")
            bounds = np.searchsorted(cl[order], np.arange(CLASSES + 1))
            for j in range(CLASSES):
                idx = order[bounds[j]:bounds[j + 1]]
                if idx.size:
                    xtx[j] += f[idx].T @ f[idx]
                    xtr[j] += f[idx].T @ res[idx]
    return xtx, xtr


def _signed_eg_bits(q: np.ndarray) -> np.ndarray:
    """Bits of each integer's signed exp-Golomb code of order EG_ORDER."""
    u = np.where(q > 0, 2 * q - 1, -2 * q).astype(np.int64) + (1 << EG_ORDER)
    return 2 * np.floor(np.log2(u)).astype(np.int64) + 1 - EG_ORDER


def choose(original: np.ndarray, decoded: np.ndarray, max_bytes: int) -> np.ndarray | None:
    """Sender side: the (H, W, 3) uint8 RGB original and decode (after the spectral floors) -> (FILTERS,
    len(PAIRS)) int64 coefficients (a row of zeros: no filter) whose field fits in max_bytes, or None when no
    filter lowers the error. Each filter is the least-squares one for its pixels, rounded to STEP; filters are
    kept in order of their error reduction per bit while they fit."""
    dec, orig = _planes(decoded), _planes(original)
    xtx, xtr = _normal_equations(orig, dec, classes(decoded))
    k = len(PAIRS)
    q = np.zeros((FILTERS, k), dtype=np.int64)
    gain = np.zeros(FILTERS)
    for j in range(FILTERS):
        if not xtr[j].any():
            continue
        a = xtx[j] + 1e-6 * np.trace(xtx[j]) / k * np.eye(k)
        qj = np.clip(np.round(np.linalg.solve(a, xtr[j]) / STEP), 1 - MAX_Q, MAX_Q - 1).astype(np.int64)
        wj = qj * STEP
        gain[j] = 2.0 * wj @ xtr[j] - wj @ xtx[j] @ wj
        q[j] = qj
    bits = 1 + _signed_eg_bits(q).sum(axis=1)                                          # (FILTERS,)
    budget = 8 * max_bytes - FILTERS                                                   # the presence bits
    keep = np.zeros(FILTERS, dtype=bool)
    for j in np.argsort(-gain / bits, kind="stable"):
        if gain[j] > 0 and q[j].any() and bits[j] - 1 <= budget:
            keep[j] = True
            budget -= bits[j] - 1
    if not keep.any():
        return None
    return np.where(keep[:, None], q, 0)


# ---- the field --------------------------------------------------------------------------------------------

def pack(coefs) -> bytes:
    """(FILTERS, len(PAIRS)) integer coefficients (rows of zeros: absent) -> the field's bytes."""
    q = np.asarray(coefs, dtype=np.int64)
    if q.shape != (FILTERS, len(PAIRS)) or np.abs(q).max(initial=0) >= MAX_Q:
        raise ValueError(f"Wiener filters must be {FILTERS} x {len(PAIRS)} integers of magnitude below {MAX_Q}")
    out = []
    for row in q:
        out.append("1" if row.any() else "0")
        if row.any():
            for v in row:
                u = (2 * int(v) - 1 if v > 0 else -2 * int(v)) + (1 << EG_ORDER)
                out.append("0" * (u.bit_length() - 1 - EG_ORDER) + format(u, "b"))
    s = "".join(out)
    s += "0" * (-len(s) % 8)
    return int(s, 2).to_bytes(len(s) // 8, "big") if s else b""


def unpack(data: bytes) -> np.ndarray:
    """The field's bytes -> (FILTERS, len(PAIRS)) int64. Raises ValueError for a field that is not exactly one
    canonical code (too short, a code too long, non-zero padding, a spare byte, or no filter at all: a file
    without filters leaves the field out)."""
    if len(data) * 8 > MAX_BITS + 7:
        raise ValueError("Wiener filter field too long")
    s = format(int.from_bytes(data, "big"), "b").zfill(8 * len(data)) if data else ""
    pos = 0

    def take(n):
        nonlocal pos
        if pos + n > len(s):
            raise ValueError("Wiener filter field ends inside a code")
        pos += n
        return s[pos - n:pos]

    q = np.zeros((FILTERS, len(PAIRS)), dtype=np.int64)
    for j in range(FILTERS):
        if take(1) == "0":
            continue
        for i in range(len(PAIRS)):
            z = 0
            while take(1) == "0":
                z += 1
                if z > 13:
                    raise ValueError("Wiener filter coefficient out of range")
            u = int("1" + take(z + EG_ORDER), 2) - (1 << EG_ORDER)
            v = (u + 1) // 2 if u % 2 else -(u // 2)
            if abs(v) >= MAX_Q:
                raise ValueError("Wiener filter coefficient out of range")
            q[j, i] = v
        if not q[j].any():
            raise ValueError("Wiener filter marked present with all coefficients zero")
    if len(s) - pos >= 8 or "1" in s[pos:]:
        raise ValueError("Wiener filter field has bits after its last code")
    if not q.any():
        raise ValueError("Wiener filter field with no filter")
    return q


# ---- receiver ---------------------------------------------------------------------------------------------

def apply(decoded: np.ndarray, coefs) -> np.ndarray:
    """Receiver side: the (H, W, 3) uint8 RGB image (after the spectral floors) and its (FILTERS, len(PAIRS))
    coefficients -> (H, W, 3) uint8."""
    q = np.asarray(coefs, dtype=np.int64)
    h, w = decoded.shape[:2]
    ys = _planes(decoded)
    out = ys.copy()
    wts = q * STEP                                                                     # (FILTERS, K)
    cls = classes(decoded) if q[:CLASSES].any() else None
    for c in range(3):
        rows = q[:CLASSES] if c == 0 else q[CLASSES + c - 1:CLASSES + c]
        if not rows.any():
            continue
        pad = np.pad(ys[..., c], RADIUS, mode="symmetric")
        acc = np.zeros((h, w))
        for k, (dy, dx) in enumerate(PAIRS):
            if rows[:, k].any():
                acc += _feature(pad, 0, h, w, dy, dx) * (wts[:CLASSES, k][cls] if c == 0 else wts[CLASSES + c - 1, k])
        out[..., c] += acc
    rgb = out @ OPPONENT
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def summary(coefs) -> str:
    """An image's filters -> one line for `combiner info`."""
    on = np.asarray(coefs, dtype=np.int64).any(axis=1)
    chroma = [n for n, o in zip(("C1", "C2"), on[CLASSES:]) if o]
    return (f"{int(on[:CLASSES].sum())} of {CLASSES} luma classes and {', '.join(chroma) or 'no colour plane'}, "
            f"{len(pack(coefs))} bytes")
