"""Playing a clip without heavy dependencies. PySide6-Essentials has no QtMultimedia, so the player writes a
temporary 16-bit WAV and hands it to whatever is there: QtMultimedia's QMediaPlayer (full PySide6), a
command-line player (PipeWire/PulseAudio/ALSA/macOS/ffmpeg) run as a QProcess, or `winsound` on Windows.
With none of them `available()` is False and the app hides its play buttons."""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QProcess, QUrl

from engine.audio_io import audio_file_bytes

# command-line players, each with the arguments that play one file and exit
COMMANDS = (("pw-play", []), ("paplay", []), ("aplay", ["-q"]), ("afplay", []),
            ("ffplay", ["-nodisp", "-autoexit", "-loglevel", "quiet"]))


def _qt_multimedia():
    try:
        from PySide6.QtMultimedia import QAudioOutput, QMediaPlayer
    except ImportError:
        return None
    return QMediaPlayer, QAudioOutput


def backend() -> str | None:
    """Name of the playback path this machine has, or None."""
    if _qt_multimedia() is not None:
        return "QtMultimedia"
    for cmd, _ in COMMANDS:
        if shutil.which(cmd):
            return cmd
    if sys.platform == "win32":
        return "winsound"
    return None


class Player(QObject):
    """Plays one clip at a time; a new `play` stops the previous one."""

    def __init__(self, parent=None, backend_name: str | None = "auto"):
        super().__init__(parent)
        self.backend = backend() if backend_name == "auto" else backend_name
        self._dir = tempfile.TemporaryDirectory(prefix="combiner-play-")
        self._proc: QProcess | None = None
        self._qt = None    # (QMediaPlayer, QAudioOutput) kept alive while playing
        self._n = 0

    def available(self) -> bool:
        return self.backend is not None

    def play(self, samples: np.ndarray, sample_rate: int) -> bool:
        if not self.available():
            return False
        self.stop()
        self._n += 1   # a fresh name: the previous file may still be open in a player
        path = Path(self._dir.name) / f"clip{self._n}.wav"
        path.write_bytes(audio_file_bytes(np.asarray(samples, np.float32).reshape(len(samples), -1),
                                          int(sample_rate), ".wav"))
        if self.backend == "QtMultimedia":
            QMediaPlayer, QAudioOutput = _qt_multimedia()
            player, out = QMediaPlayer(self), QAudioOutput(self)
            player.setAudioOutput(out)
            player.setSource(QUrl.fromLocalFile(str(path)))
            player.play()
            self._qt = (player, out)
        elif self.backend == "winsound":
            import winsound
            winsound.PlaySound(str(path), winsound.SND_FILENAME | winsound.SND_ASYNC)
        else:
            args = dict(COMMANDS)[self.backend]
            self._proc = QProcess(self)
            self._proc.start(shutil.which(self.backend), [*args, str(path)])
        return True

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.waitForFinished(1000)
            self._proc = None
        if self._qt is not None:
            self._qt[0].stop()
            self._qt = None
        if self.backend == "winsound":
            import winsound
            winsound.PlaySound(None, 0)

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()
