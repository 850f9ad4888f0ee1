"""Resumable long encodes: a journal of the batches an encode has finished.

An audio encode codes its chunks a batch at a time (`encode_audio_batch`, `max_units` chunks each), a large
image its patches (`encode_image_batch`, bands of `max_units` patches), and what a batch has coded never changes
afterwards. Later batches depend on earlier ones only through what those coded: the latent grids they stitch
with (the receiver's values, rebuilt from the coded indices) and an item's coded network delta. So the sender
may write each finished batch to a journal file and, after a cancel, a crash or a lost machine, a later run of
the same encode restores those batches from it and goes on with the next one. The resumed file is the one an
uninterrupted encode writes (byte for byte with the same torch build).

A journal names its encode by a key over everything that decides the file: every clip's samples and sample
rate (every image and importance map), the rate, the prior's id, the encoder's settings, the seed, the batch
size and the coding options. A journal made for anything else is not used (`Journal.restore` returns nothing,
the encode starts over and then overwrites it). The journal is rewritten atomically after every batch, so it
is always whole; one that cannot be written does not stop the encode.

Nothing here is part of the .cmb format; the journal is the sender's private scratch file.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .config import FitConfig

VERSION = 1


@dataclass
class BatchRecord:
    """What one finished batch coded: its units [(clip, unit)] in batch order, each unit's block count, indices
    and KL per block (zero-padded rows), the network deltas it coded {clip: (scale codes, indices, delta)}
    and the CPU and wall seconds it took."""

    units: np.ndarray                     # (B, 2) int64
    blocks: np.ndarray                    # (B,) int64
    indices: np.ndarray                   # (B, max blocks) int64
    kl: np.ndarray                        # (B, max blocks)
    deltas: dict = field(default_factory=dict)
    cpu_s: float = 0.0
    wall_s: float = 0.0
    probe_kl: np.ndarray | None = None    # (B,) KL per unit after the probe (content allocation), or None


def encode_key(arrays: Sequence[np.ndarray | None], rate: float, prior_id: str, fit: FitConfig, seed: int,
               max_units: int, options: dict) -> str:
    """Hex digest naming one encode: every input array (samples, images, importance maps; shape, type and
    bytes; None counts as absent), the rate, the prior, the encoder settings, the seed, the batch size and the
    `options` (JSON-able: sample rates, coding flags)."""
    h = hashlib.sha256()
    h.update(json.dumps(dict(version=VERSION, rate=float(rate), prior=prior_id, fit=asdict(fit), seed=int(seed),
                             max_units=int(max_units), options=options, arrays=len(arrays)),
                        sort_keys=True).encode())
    for x in arrays:
        if x is None:
            h.update(b"none")
            continue
        x = np.ascontiguousarray(x)
        h.update(json.dumps([list(x.shape), str(x.dtype)]).encode())
        h.update(x.tobytes())
    return h.hexdigest()


class Journal:
    """The journal file at `path` of one encode. The encoder calls `restore(key, batches)` once, before coding,
    to learn which batches an earlier run finished and takes each of them back with `coded(b, ...)`; around
    every batch it codes it calls `begin` and `finish` (which writes the file). The caller `remove`s the file
    once the output is safely written."""

    def __init__(self, path: str | os.PathLike | None, folder: str | os.PathLike | None = None):
        if (path is None) == (folder is None):
            raise ValueError("a journal has a path, or a folder where restore names it")
        self.path = Path(path) if path is not None else None   # None until `restore` names it (`in_folder`)
        self.folder = Path(folder) if folder is not None else None
        self.key: str | None = None
        self.n_batches = 0
        self.records: list[BatchRecord] = []
        self.restored = 0          # batches taken from the file by `restore`
        self.note = ""             # why an existing file was not used, or why it could not be written
        self.failed = False        # writing failed once: the encode goes on without a journal

    @classmethod
    def in_folder(cls, folder: str | os.PathLike) -> "Journal":
        """A journal in `folder` whose file is named by its encode's key once `restore` learns it: one folder
        (the app's cache) holds the journals of many encodes, and the same encode finds its own again."""
        return cls(None, folder)

    def restore(self, key: str, batches: Sequence[np.ndarray]) -> int:
        """How many finished batches of the encode named `key` the file holds, counted from the first, as far as
        they hold the units `batches` expects ((B, 2) [(clip, unit)] per batch); `coded(b)` gives them back.
        0 when there is no file or it belongs to another encode (then `note` says so)."""
        n_batches = len(batches)
        self.key, self.n_batches, self.records, self.restored, self.note = key, n_batches, [], 0, ""
        if self.folder is not None:
            self.path = self.folder / f"{key[:24]}.journal"
        if not self.path.exists():
            return 0
        try:
            with np.load(self.path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                if meta.get("version") != VERSION or meta.get("key") != key:
                    self.note = f"{self.path} is the journal of another encode: starting over"
                    return 0
                if meta["batches"] != n_batches:
                    self.note = f"{self.path} does not match this encode's batches: starting over"
                    return 0
                for b, info in enumerate(meta["records"][:n_batches]):
                    if not np.array_equal(z[f"b{b}_units"], np.asarray(batches[b]).reshape(-1, 2)):
                        break
                    deltas = {int(i): (tuple(int(c) for c in z[f"b{b}_d{i}_codes"]),
                                       z[f"b{b}_d{i}_indices"].astype(np.int64),
                                       torch.from_numpy(z[f"b{b}_d{i}_delta"].copy()))
                              for i in info["deltas"]}
                    probe = z[f"b{b}_probe"] if info.get("probe") else None
                    self.records.append(BatchRecord(z[f"b{b}_units"], z[f"b{b}_blocks"], z[f"b{b}_indices"],
                                                    z[f"b{b}_kl"], deltas, info["cpu_s"], info["wall_s"], probe))
        except Exception as e:   # any damage (a cut zip, a bad array, a bad record) means: do not use it
            self.records = []
            self.note = f"{self.path} is damaged ({type(e).__name__}): starting over"
            return 0
        self.restored = len(self.records)
        return self.restored

    def add(self, record: BatchRecord) -> None:
        """Append a finished batch and rewrite the file atomically. A journal that cannot be written (a full
        disk, a folder gone) does not stop the encode: `note` says so and nothing more is written."""
        from .errors import MediaError
        from .media import write_atomic

        if self.key is None:
            raise RuntimeError("Journal.restore must be called before add")
        self.records.append(record)
        if self.failed:
            return
        arrays, infos = {}, []
        for b, r in enumerate(self.records):
            arrays |= {f"b{b}_units": r.units, f"b{b}_blocks": r.blocks, f"b{b}_indices": r.indices,
                       f"b{b}_kl": r.kl} | ({f"b{b}_probe": r.probe_kl} if r.probe_kl is not None else {})
            for i, (codes, idx, delta) in r.deltas.items():
                arrays |= {f"b{b}_d{i}_codes": np.asarray(codes, dtype=np.int64),
                           f"b{b}_d{i}_indices": np.asarray(idx, dtype=np.int64),
                           f"b{b}_d{i}_delta": delta.detach().cpu().numpy()}
            infos.append(dict(deltas=sorted(int(i) for i in r.deltas), cpu_s=r.cpu_s, wall_s=r.wall_s,
                              probe=r.probe_kl is not None))
        meta = dict(version=VERSION, key=self.key, batches=self.n_batches, records=infos)
        buf = io.BytesIO()
        np.savez(buf, meta=np.array(json.dumps(meta)), **arrays)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, buf.getvalue())
        except (OSError, MediaError) as e:
            self.failed = True
            self.note = f"could not write the journal {self.path} ({e}): this encode cannot be resumed"

    def coded(self, b: int, adapt, device):
        """The restored batch `b` as the encoder's CodedBatch; its coded network deltas go into `adapt` (a
        hierarchy.ImageDelta, or None) as if this run had coded them."""
        from .hierarchy import CodedDelta
        from .unit_coding import CodedBatch

        r = self.records[b]
        for i, (codes, idx, d) in r.deltas.items():
            adapt.coded[i] = CodedDelta(codes, idx, d.to(device))
        return CodedBatch(r.blocks, r.indices, r.kl, r.probe_kl)

    def begin(self, adapt) -> tuple[float, float, set]:
        """Called as a batch starts: what `finish` needs to record it."""
        return time.process_time(), time.time(), set(adapt.coded) if adapt is not None else set()

    def finish(self, part: Sequence[tuple[int, int]], coded, adapt, begun: tuple[float, float, set]) -> None:
        """Record the batch of units `part` [(item, unit)] just coded (`coded`, a CodedBatch) with the network
        deltas it coded into `adapt`."""
        cpu, wall, before = begun
        new = {i: (cd.codes, cd.indices, cd.delta) for i, cd in (adapt.coded.items() if adapt is not None else ())
               if i not in before}
        self.add(BatchRecord(np.array(part, dtype=np.int64).reshape(-1, 2), np.asarray(coded.blocks),
                             np.asarray(coded.indices), np.asarray(coded.kl), new, time.process_time() - cpu,
                             time.time() - wall, None if coded.probe_kl is None else np.asarray(coded.probe_kl)))

    def remove(self) -> None:
        if self.path is None:   # a journal in a folder that was never named: no file of ours
            return
        try:
            self.path.unlink()
        except OSError:   # absent, or not ours to remove: nothing to do
            pass

    @property
    def cpu_s(self) -> float:
        return float(sum(r.cpu_s for r in self.records))

    @property
    def wall_s(self) -> float:
        return float(sum(r.wall_s for r in self.records))


def prune(folder: str | os.PathLike, days: float) -> int:
    """Remove the journals (*.journal) in `folder` not written for `days` days -> how many were removed. A
    missing folder, or a file that cannot be removed, is left alone."""
    folder, n = Path(folder), 0
    if not folder.is_dir():
        return 0
    limit = time.time() - days * 86400
    for f in folder.glob("*.journal"):
        try:
            if f.is_file() and f.stat().st_mtime < limit:
                f.unlink()
                n += 1
        except OSError:
            pass
    return n
