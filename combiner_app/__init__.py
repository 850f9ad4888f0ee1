"""COMBINER Studio desktop front end (PySide6 + pyqtgraph). It imports the engine; the engine never imports it."""

__version__ = "0.1.0"
