"""Background encoding: a QObject worker moved to a QThread iterates `engine.codec.encode_batch` and
re-emits every EncodeEvent as a Qt signal. `EncodeRunner` (GUI thread) owns the thread and worker.

Ownership rule (segfaults were seen otherwise): nothing is connected to deleteLater; the runner keeps the
Python references and drops them in a GUI-thread slot after the thread has quit.
"""
from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from engine import codec, container, prior as prior_mod
from engine.config import FitConfig
from engine.container import CmbHeader
from engine.errors import CombinerError


@dataclass
class EncodePlan:
    """What an encode at `rate` will do, known before it starts (for the live view's bit budget)."""

    rate: float
    prior: prior_mod.Prior
    n_blocks: int
    kappa: int
    overhead_bits: int      # header + checksum
    target_bits: float      # rate * pixels

    @property
    def file_bits(self) -> int:
        return self.overhead_bits + 8 * container.payload_bytes(self.n_blocks, self.kappa)


@dataclass
class EncodeResult:
    plan: EncodePlan
    encoded: codec.Encoded
    seconds: float


def plan_encode(shape: tuple[int, int, int], rate: float, prior_dirs=None, seed: int = 0) -> EncodePlan:
    """Prior and block count the engine will use for this rate. Raises CombinerError like the engine does."""
    h, w, c = shape
    p = prior_mod.nearest("image", c, rate, prior_dirs)
    n = codec.blocks_for_rate(rate, shape, p, seed)
    hdr = CmbHeader("image", (h, w, c), p.short_id, seed, p.kappa, n)
    overhead = 8 * (len(container.header_bytes(hdr)) + container.CRC_BYTES)
    return EncodePlan(rate, p, n, p.kappa, overhead, rate * h * w)


class EncodeWorker(QObject):
    """Encodes one image at each rate of `rates` in turn (one rate for Compress, a ladder for Explore)."""

    planned = Signal(int, object)      # rate index, EncodePlan
    progress = Signal(int, object)     # rate index, EncodeEvent
    encoded = Signal(int, object)      # rate index, EncodeResult
    rate_failed = Signal(int, str)     # rate index, message (ladder: the other rates go on)
    failed = Signal(str)               # the whole job stopped on an error
    done = Signal(bool)                # cancelled?

    def __init__(self, image: np.ndarray, rates: list[float], fit: FitConfig, device: str = "cpu",
                 prior_dirs=None, keep_going: bool = False):
        super().__init__()
        self.image, self.rates, self.fit, self.device = image, list(rates), fit, device
        self.prior_dirs, self.keep_going = prior_dirs, keep_going
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    @Slot()
    def run(self) -> None:
        cancelled = False
        try:
            for i, rate in enumerate(self.rates):
                if self._cancel.is_set():
                    cancelled = True
                    break
                try:
                    cancelled = self._encode_one(i, rate)
                except CombinerError as e:
                    if not self.keep_going:
                        self.failed.emit(str(e))
                        break
                    self.rate_failed.emit(i, str(e))
                if cancelled:
                    break
        except Exception as e:  # a bug, not bad input: report it instead of killing the app
            traceback.print_exc()
            self.failed.emit(f"Internal error: {type(e).__name__}: {e}")
        self.done.emit(cancelled)

    def _encode_one(self, i: int, rate: float) -> bool:
        """-> True when cancelled. Nothing is written anywhere: results travel by signal only."""
        t0 = time.perf_counter()
        if self.image.shape[0] * self.image.shape[1] > codec.MAX_PIXELS:
            plan = None   # let the engine refuse it with its own message
        else:
            plan = plan_encode(self.image.shape, rate, self.prior_dirs)
            self.planned.emit(i, plan)
        gen = codec.encode_batch([self.image], rate, prior=plan.prior if plan else None, fit=self.fit,
                                 device=self.device, prior_dirs=self.prior_dirs)
        try:
            while True:
                if self._cancel.is_set():
                    return True
                try:
                    ev = next(gen)
                except StopIteration as stop:
                    result = stop.value[0]
                    break
                self.progress.emit(i, ev)
        finally:
            gen.close()
        self.encoded.emit(i, EncodeResult(plan, result, time.perf_counter() - t0))
        return False


class EncodeRunner(QObject):
    """GUI-thread owner of one EncodeWorker + QThread at a time; relays the worker's signals."""

    planned = Signal(int, object)
    progress = Signal(int, object)
    encoded = Signal(int, object)
    rate_failed = Signal(int, str)
    failed = Signal(str)
    done = Signal(bool)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._thread: QThread | None = None
        self._worker: EncodeWorker | None = None

    def is_running(self) -> bool:
        return self._worker is not None

    def start(self, image, rates, fit, device="cpu", prior_dirs=None, keep_going=False) -> None:
        if self.is_running():
            raise RuntimeError("an encode is already running")
        self._worker = EncodeWorker(image, rates, fit, device, prior_dirs, keep_going)
        self._thread = QThread()
        self._worker.moveToThread(self._thread)
        self._worker.planned.connect(self.planned)
        self._worker.progress.connect(self.progress)
        self._worker.encoded.connect(self.encoded)
        self._worker.rate_failed.connect(self.rate_failed)
        self._worker.failed.connect(self.failed)
        self._worker.done.connect(self._on_done)
        self._thread.started.connect(self._worker.run)
        self._thread.start()

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.cancel()

    @Slot(bool)
    def _on_done(self, cancelled: bool) -> None:
        thread = self._thread
        if thread is not None:
            thread.quit()
            thread.wait()
        self._thread = self._worker = None   # Python owns both; drop them here, on the GUI thread
        self.done.emit(cancelled)

    def shutdown(self, timeout_ms: int = 5000) -> None:
        """Cancel and wait (window closing)."""
        if self._worker is not None:
            self._worker.cancel()
        if self._thread is not None:
            self._thread.quit()
            self._thread.wait(timeout_ms)
