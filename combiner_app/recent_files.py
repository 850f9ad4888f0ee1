"""Recently opened files, kept in QSettings (organisation "COMBINER", application "Studio")."""
from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings

KEY = "recentFiles"
MAX_RECENT = 10


def default_settings() -> QSettings:
    return QSettings("COMBINER", "Studio")


def default_journal_dir() -> Path:
    """Where the app keeps the journals of long audio encodes (the user's cache folder)."""
    from PySide6.QtCore import QStandardPaths

    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.CacheLocation)
    return Path(base or Path.home() / ".cache" / "combiner-studio") / "journals"


class RecentFiles:
    def __init__(self, settings: QSettings | None = None):
        self.settings = settings if settings is not None else default_settings()

    def paths(self) -> list[str]:
        v = self.settings.value(KEY, [])
        if isinstance(v, str):
            v = [v]
        return [str(p) for p in (v or [])]

    def add(self, path: str) -> None:
        path = os.path.abspath(path)
        items = [path] + [p for p in self.paths() if p != path]
        self.settings.setValue(KEY, items[:MAX_RECENT])
        self.settings.sync()

    def clear(self) -> None:
        self.settings.setValue(KEY, [])
        self.settings.sync()
