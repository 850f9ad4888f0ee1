"""Background encoding: a QObject worker moved to a QThread iterates the engine's encode generator
(`engine.patch_codec.encode_image` for an image of any size, `engine.codec.encode_batch` for an image of
exactly a single-image prior's size, `engine.audio_codec.encode_audio` for an AudioClip; `plans.use_patches`
decides between the two image codecs, as the CLI does) and re-emits every EncodeEvent as a Qt signal.
`EncodeRunner` (GUI thread) owns the thread and worker.

Ownership rule (segfaults were seen otherwise): nothing is connected to deleteLater; the runner keeps the
Python references and drops them in a GUI-thread slot after the thread has quit.
"""
from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from engine import audio_codec, cancel, codec, container, metrics, patch_codec, reference_codecs
from engine.audio_codec import EncodedAudio
from engine.config import FitConfig
from engine.errors import CombinerError
from engine.journal import Journal
from engine.patch_codec import EncodedImage

from . import baselines
from .plans import (AudioClip, EncodePlan, alpha_bytes, plan_audio, plan_encode, plan_image, plan_patches,
                    use_patches)

__all__ = ["AudioClip", "EncodePlan", "EncodeResult", "EncodeRunner", "EncodeWorker", "plan_audio", "plan_encode",
           "plan_image", "plan_patches", "use_patches"]
REFERENCE_CODECS = ("mp3", "opus")


@dataclass
class EncodeResult:
    plan: EncodePlan | None
    encoded: codec.Encoded | EncodedImage | EncodedAudio
    seconds: float
    references: list = field(default_factory=list)   # reference_codecs.ReferenceResult (audio) or
                                                     # baselines.CodedImage (images) at equal size
    metrics: dict = field(default_factory=dict)      # images: {"ms_ssim"}; audio: {"snr","psnr","stoi","pesq"}
    ref_metrics: dict = field(default_factory=dict)  # the same measures of each reference, by codec name
    importance_used: bool = False                    # a painted region of interest weighted the allocation
    resumed: tuple[int, int] | None = None           # audio: (batches taken from a cancelled encode's journal,
                                                     # batches in all), when it continued one


def preload_torch() -> None:
    """torch's optimisers import torch._dynamo (sympy and much more) on their first step: seconds of imports
    holding the GIL, which froze the window for 200-300 ms during the first steps of the first encode. The
    window does it once, at start, before anything is on screen."""
    try:
        import torch._dynamo  # noqa: F401
    except Exception:   # a build without dynamo: nothing to preload
        pass
    preload_image_job()


def preload_image_job() -> None:
    """The other imports an image encode would otherwise make in the worker during its first second, each of
    them Python work holding the GIL (PySide's import hook even reads every new module's source), which made
    the window's first paint of the Live tab wait 150-400 ms: Pillow's image plugins (its first WebP/AVIF save
    imports all 45 of them), pytorch_msssim (the result's MS-SSIM) and the profiler module that the optimiser's
    first zero_grad imports."""
    from PIL import Image

    Image.init()
    for name in ("pytorch_msssim", "torch.profiler._cupti_monitor"):
        try:
            __import__(name)
        except Exception:   # an optional package or a torch without it: nothing to preload
            pass


def preload_measures() -> None:
    """Import the measures' libraries (pystoi's import alone takes seconds and holds the GIL, which would stall
    the window if it happened in the worker mid-job). The app calls this when the first audio file is opened."""
    try:
        import pesq  # noqa: F401
        import pystoi.stoi  # noqa: F401
        import pytorch_msssim  # noqa: F401
    except ImportError:
        pass


def speech_measures(original: np.ndarray, decoded: np.ndarray, sample_rate: int) -> dict:
    """SNR, PSNR, STOI and PESQ (engine.metrics); a measure that fails is left out rather than failing the job."""
    try:
        return metrics.speech_metrics(original, decoded, sample_rate)
    except Exception:   # a measure's own library may refuse odd input; the result is still good
        traceback.print_exc()
        return {"snr": metrics.snr(original, decoded), "psnr": metrics.audio_psnr(original, decoded)}


@dataclass
class Decoded:
    """An opened `.cmb` file, decoded in the worker thread."""

    modality: str              # "image" | "audio"
    signal: np.ndarray         # (H, W, C) uint8 image or (N, C) float32 samples
    header: object
    prior: object
    nbytes: int
    seconds: float             # decode time
    sample_rate: int = 0       # audio


def decode_cmb(data: bytes, prior_dirs=None, progress=None) -> Decoded:
    """`.cmb` bytes -> Decoded, with `progress(done, total)` while a patch-coded image or an audio clip is
    rendered (patches, or the clip's sounding units). Raises the
    engine's CombinerError (bad file, missing prior) and cancel.Cancelled."""
    t0 = time.perf_counter()
    header, _ = container.read(data)   # checks the checksum; says which decoder this file needs
    if header.modality == "audio":
        y, sr, header, prior = audio_codec.decode_audio_full(data, prior_dirs=prior_dirs, progress=progress)
        return Decoded("audio", y, header, prior, len(data), time.perf_counter() - t0, sr)
    if header.patch:
        img, header, prior = patch_codec.decode_image_full(data, prior_dirs=prior_dirs, progress=progress)
    else:
        img, header, prior = codec.decode_full(data, prior_dirs=prior_dirs)
    return Decoded("image", img, header, prior, len(data), time.perf_counter() - t0)


class DecodeWorker(QObject):
    """Decodes one `.cmb` file's bytes off the GUI thread."""

    progress = Signal(int, int)       # patches (image) or sounding units (audio) rendered, and in all
    decoded = Signal(object)          # Decoded
    failed = Signal(str)
    done = Signal(bool)               # cancelled?

    def __init__(self, data: bytes, prior_dirs=None):
        super().__init__()
        self.data, self.prior_dirs = data, prior_dirs
        self._token = cancel.Token()

    def cancel(self) -> None:
        self._token.cancel()

    @Slot()
    def run(self) -> None:
        cancelled = False
        with cancel.scope(self._token):
            try:
                self.decoded.emit(decode_cmb(self.data, self.prior_dirs, lambda d, t: self.progress.emit(d, t)))
            except cancel.Cancelled:
                cancelled = True
            except CombinerError as e:
                self.failed.emit(str(e))
            except MemoryError:
                self.failed.emit("not enough memory to decode this file")
            except Exception as e:   # a bug: report it instead of killing the app
                traceback.print_exc()
                self.failed.emit(f"internal error while decoding: {e}")
        self.done.emit(cancelled)


class EncodeWorker(QObject):
    """Encodes one image or AudioClip at each rate of `rates` in turn (one rate for Compress, a ladder for
    Explore). With `references`, an audio result also carries MP3/Opus at the same file size and an image
    result JPEG/WebP/AVIF, made here so the GUI thread never waits on those encoders."""

    planned = Signal(int, object)      # rate index, EncodePlan
    progress = Signal(int, object)     # rate index, EncodeEvent
    encoded = Signal(int, object)      # rate index, EncodeResult
    rate_failed = Signal(int, str)     # rate index, message (ladder: the other rates go on)
    curves = Signal(object)            # image ladders: {codec: [(bpp, psnr)]} of the classical codecs
    failed = Signal(str)               # the whole job stopped on an error
    done = Signal(bool)                # cancelled?

    def __init__(self, source: np.ndarray | AudioClip, rates: list[float], fit: FitConfig, device: str = "cpu",
                 prior_dirs=None, keep_going: bool = False, references: bool = False,
                 importance: np.ndarray | None = None, journal_dir: str | Path | None = None,
                 adapt: bool | str = False):
        super().__init__()
        self.adapt = adapt             # audio: encode_audio's `adapt` (audio_codec.EITHER tries the clip delta)
        self.importance = importance   # patch images: (rows, cols) region-of-interest weights (roi.py)
        # Audio or a photo longer than one encoder batch keeps a journal here (engine/journal.py): a cancelled
        # encode leaves its finished batches, and compressing the same input at the same settings continues.
        self.journal_dir = Path(journal_dir) if journal_dir is not None else None
        self._journal: Journal | None = None
        self.kept: tuple[int, int] | None = None   # after a cancel: (batches kept in the journal, batches in all)
        self.source, self.rates, self.fit, self.device = source, list(rates), fit, device
        self.prior_dirs, self.keep_going, self.references = prior_dirs, keep_going, references
        self._alpha: bytes | None = None    # an image's alpha plane as the patch codec stores it (made once)
        self._cancel = threading.Event()
        self._token = cancel.Token()   # reaches inside the engine's steps (engine/cancel.py)

    def cancel(self) -> None:
        self._cancel.set()
        self._token.cancel()

    @Slot()
    def run(self) -> None:
        with cancel.scope(self._token):
            cancelled = self._run()
        if cancelled:
            cancel.cleanup()
        self.done.emit(cancelled)

    def _run(self) -> bool:
        cancelled = False
        try:
            if self.references and not isinstance(self.source, AudioClip):
                colour = baselines.colour(self.source)
                self.curves.emit({c: baselines.rd_curve(colour, c, stop=self._cancel.is_set)
                                  for c in baselines.codecs()})
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
        except cancel.Cancelled:
            cancelled = True
        except MemoryError:
            self.failed.emit("Not enough memory for this job; try a smaller image or a lower rate.")
        except Exception as e:  # a bug, not bad input: report it instead of killing the app
            traceback.print_exc()
            self.failed.emit(f"Internal error: {e}")
        return cancelled

    def _encode_one(self, i: int, rate: float) -> bool:
        """-> True when cancelled. Nothing is written anywhere: results travel by signal only."""
        t0 = time.perf_counter()
        plan, gen = self._start(rate)
        if plan is not None:
            self.planned.emit(i, plan)
        try:
            while True:
                if self._cancel.is_set():
                    return True
                try:
                    ev = next(gen)
                except StopIteration as stop:
                    result = stop.value
                    break
                self.progress.emit(i, ev)
        finally:
            gen.close()
            j = self._journal
            if j is not None and j.records:
                self.kept = (len(j.records), j.n_batches)
        if isinstance(result, list):   # encode_batch returns one result per image (encode_image just one)
            result = result[0]
        res = EncodeResult(plan, result, time.perf_counter() - t0,
                           importance_used=self.importance is not None and bool(getattr(plan, "patch", 0)))
        if self._journal is not None:
            if self._journal.restored:
                res.resumed = (self._journal.restored, self._journal.n_batches)
            self._journal.remove()
            self.kept = None
        if isinstance(self.source, AudioClip):
            res.metrics = speech_measures(self.source.samples, result.reconstruction, self.source.sample_rate)
        else:
            res.metrics = {"ms_ssim": metrics.ms_ssim(self.source, result.reconstruction)}
        if self.references and isinstance(self.source, AudioClip):
            for name in REFERENCE_CODECS:
                if self._cancel.is_set():
                    return True
                ref = reference_codecs.at_size(self.source.samples, self.source.sample_rate, name,
                                               len(result.data))
                if ref is not None:
                    res.references.append(ref)
                    res.ref_metrics[ref.codec] = speech_measures(self.source.samples, ref.decoded,
                                                                 self.source.sample_rate)
        elif self.references:
            colour = baselines.colour(self.source)
            for name in baselines.codecs():
                if self._cancel.is_set():
                    return True
                ref = baselines.at_size(colour, name, len(result.data))
                res.references.append(ref)
                res.ref_metrics[name] = {"ms_ssim": metrics.ms_ssim(colour, ref.decoded)}
        self.encoded.emit(i, res)
        return False

    def _start(self, rate: float):
        """-> (plan or None, the engine's encode generator)."""
        src = self.source
        self._journal = Journal.in_folder(self.journal_dir) if self.journal_dir is not None else None
        if isinstance(src, AudioClip):
            plan = plan_audio(src, rate, self.prior_dirs)
            return plan, audio_codec.encode_audio(src.samples, src.sample_rate, rate, prior=plan.prior,
                                                  fit=self.fit, device=self.device, prior_dirs=self.prior_dirs,
                                                  adapt=self.adapt, journal=self._journal)
        if use_patches(src.shape, self.prior_dirs):
            if self._alpha is None:
                self._alpha = alpha_bytes(src)
            plan = plan_patches(src.shape, rate, self.prior_dirs, alpha=self._alpha)
            imp = None
            if self.importance is not None and tuple(self.importance.shape) == tuple(plan.grid):
                imp = [self.importance]
            return plan, patch_codec.encode_image(src, rate, prior=plan.prior, fit=self.fit, device=self.device,
                                                  prior_dirs=self.prior_dirs, importance=imp, journal=self._journal)
        plan = None   # too large: let the engine refuse it with its own message
        if src.shape[0] * src.shape[1] <= codec.MAX_PIXELS:
            plan = plan_encode(src.shape, rate, self.prior_dirs)
        return plan, codec.encode_batch([src], rate, prior=plan.prior if plan else None, fit=self.fit,
                                        device=self.device, prior_dirs=self.prior_dirs)


class EncodeRunner(QObject):
    """GUI-thread owner of one EncodeWorker + QThread at a time; relays the worker's signals."""

    planned = Signal(int, object)
    progress = Signal(int, object)
    encoded = Signal(int, object)
    rate_failed = Signal(int, str)
    curves = Signal(object)
    failed = Signal(str)
    done = Signal(bool)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._thread: QThread | None = None
        self._worker: EncodeWorker | None = None
        self.kept: tuple[int, int] | None = None   # the last job's EncodeWorker.kept

    def is_running(self) -> bool:
        return self._worker is not None

    def start(self, source, rates, fit, device="cpu", prior_dirs=None, keep_going=False, references=False,
              importance=None, journal_dir=None, adapt=False) -> None:
        """`source`: an (H, W, C) uint8 image or an AudioClip; `importance`: region-of-interest weights;
        `journal_dir`: where long audio encodes keep their journals (None: none kept); `adapt`: audio's
        network-delta choice (SettingsPanel.adapt)."""
        if self.is_running():
            raise RuntimeError("an encode is already running")
        self.kept = None
        self._worker = EncodeWorker(source, rates, fit, device, prior_dirs, keep_going, references, importance,
                                    journal_dir, adapt)
        self._thread = QThread()
        self._worker.moveToThread(self._thread)
        self._worker.planned.connect(self.planned)
        self._worker.progress.connect(self.progress)
        self._worker.encoded.connect(self.encoded)
        self._worker.rate_failed.connect(self.rate_failed)
        self._worker.curves.connect(self.curves)
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
        self.kept = getattr(self._worker, "kept", None)
        self._thread = self._worker = None   # Python owns both; drop them here, on the GUI thread
        self.done.emit(cancelled)

    def shutdown(self, timeout_ms: int = 60_000) -> bool:
        """Cancel and wait until the thread has finished (tests; the window instead closes once `done` arrives,
        never blocking). The engine sees the cancel within a fraction of a second (engine/cancel.py). -> True
        when no thread is left running."""
        if self._worker is not None:
            self._worker.cancel()
        if self._thread is not None:
            self._thread.quit()
            return self._thread.wait(timeout_ms)
        return True


class DecodeRunner(EncodeRunner):
    """GUI-thread owner of one DecodeWorker + QThread (same ownership rule as EncodeRunner)."""

    decode_progress = Signal(int, int)
    decoded = Signal(object)

    def start(self, data: bytes, prior_dirs=None) -> None:
        if self.is_running():
            raise RuntimeError("a decode is already running")
        self._worker = DecodeWorker(data, prior_dirs)
        self._thread = QThread()
        self._worker.moveToThread(self._thread)
        self._worker.progress.connect(self.decode_progress)
        self._worker.decoded.connect(self.decoded)
        self._worker.failed.connect(self.failed)
        self._worker.done.connect(self._on_done)
        self._thread.started.connect(self._worker.run)
        self._thread.start()
