"""Playback with `sounddevice` (PortAudio): the original clip, the decoded signal and the reference codecs
(Opus, MP3 at the same file size), with an A/B switch that keeps the position, so the same syllable can be
heard through either codec. All versions are at the clip's own sample rate, aligned to the original.

Where PortAudio or an output device is missing, `available()` is False and `reason` says why; the app shows
that reason beside disabled play buttons rather than hiding them."""
from __future__ import annotations

import threading

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal


def _sounddevice():
    try:
        import sounddevice as sd
    except (ImportError, OSError) as e:   # OSError: the PortAudio library itself is missing
        return None, f"no audio library ({e})"
    try:
        dev = sd.query_devices(kind="output")
    except Exception:
        return None, "no audio output device found on this machine"
    if not dev or int(dev.get("max_output_channels", 0)) < 1:
        return None, "no audio output device found on this machine"
    return sd, ""


class Player(QObject):
    """Plays one of several named versions of a clip; `switch` changes the version at the same position."""

    position_changed = Signal(float)   # seconds
    state_changed = Signal(str)        # name of the version playing, or "" when stopped

    def __init__(self, parent=None, backend_name: str | None = "auto"):
        super().__init__(parent)
        if backend_name == "auto":
            self._sd, self.reason = _sounddevice()
        else:            # tests: None means "no device"
            self._sd, self.reason = None, "no audio output device found on this machine"
        self.backend = "sounddevice" if self._sd is not None else None
        self.sources: dict[str, np.ndarray] = {}
        self.sample_rate = 0
        self.current = ""
        self._pos = 0                  # next sample to play
        self._lock = threading.Lock()
        self._stream = None
        self._timer = QTimer(self)
        self._timer.setInterval(100)
        self._timer.timeout.connect(self._tick)

    def available(self) -> bool:
        return self.backend is not None

    # -- content --------------------------------------------------------------------------------------
    def set_sources(self, sources: dict[str, np.ndarray], sample_rate: int) -> None:
        """{name: (N, C) or (N,) float samples in [-1, 1]} at one sample rate; stops playback."""
        self.stop()
        self.sample_rate = int(sample_rate)
        self.sources = {k: np.ascontiguousarray(np.asarray(v, np.float32).reshape(len(v), -1))
                        for k, v in sources.items() if v is not None}
        self._pos = 0

    def position(self) -> float:
        return self._pos / self.sample_rate if self.sample_rate else 0.0

    # -- playing --------------------------------------------------------------------------------------
    def play(self, name: str, start: float | None = None) -> bool:
        """Play version `name` from `start` seconds (default: where the last version was, or the start)."""
        if name not in self.sources or not self.available():
            return False
        with self._lock:
            if start is not None:
                self._pos = int(start * self.sample_rate)
            if self._pos >= len(self.sources[name]):
                self._pos = 0
            self.current = name
        if self._stream is None:
            channels = max(x.shape[1] for x in self.sources.values())
            try:
                self._stream = self._sd.OutputStream(samplerate=self.sample_rate, channels=channels,
                                                     dtype="float32", callback=self._callback)
                self._stream.start()
            except Exception as e:   # the device went away or refuses this rate: say so, do not crash
                self._stream = None
                self.reason = f"playback failed: {e}"
                self.current = ""
                self.state_changed.emit("")
                return False
            self._timer.start()
        self.state_changed.emit(name)
        return True

    def switch(self, name: str) -> bool:
        """A/B: continue with another version from the same position."""
        if not self.current:
            return self.play(name)
        with self._lock:
            if name in self.sources:
                self.current = name
        self.state_changed.emit(self.current)
        return True

    def _callback(self, out, frames, time_info, status) -> None:
        with self._lock:
            x = self.sources.get(self.current)
            if x is None:
                out.fill(0)
                return
            chunk = x[self._pos:self._pos + frames]
            n = chunk.shape[0]
            out.fill(0)
            if n:
                out[:n, :chunk.shape[1]] = chunk
                if chunk.shape[1] < out.shape[1]:
                    out[:n, chunk.shape[1]:] = chunk[:, :1]
            self._pos += n
            if n < frames:
                raise self._sd.CallbackStop

    def _tick(self) -> None:
        self.position_changed.emit(self.position())
        if self._stream is not None and not self._stream.active:
            self.stop()

    def stop(self) -> None:
        stream, self._stream = self._stream, None
        self._timer.stop()
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception:
                pass
        if self.current:
            self.current = ""
            self.state_changed.emit("")

    def close(self) -> None:
        self.stop()
