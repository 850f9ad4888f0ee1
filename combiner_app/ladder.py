"""Ladder bookkeeping shared by the image and audio rate explorers: the run controls (Explore / Cancel, the
status line, the rate slider) and their layout, the slider following the results as they arrive, and the
controls and status line following the background run. The explorer supplies `runner`, `results`, `rates`,
`table`, `show_position()`, the signals named below, `RATE_UNIT` and `has_signal()`."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QPushButton, QSlider, QVBoxLayout, QWidget


def _object_name(prefix: str, base: str) -> str:
    """`exploreButton` for the image explorer, `audioExploreButton` for prefix "audio"."""
    return base if not prefix else prefix + base[0].upper() + base[1:]


class LadderMixin:
    RATE_UNIT = ""

    def _build_controls(self, prefix: str, hint: str) -> None:
        """The run controls, wired to `explore()`, the runner and `show_position()`. Object names carry
        `prefix` (tests and screenshots find the widgets by them)."""
        self.explore_button = QPushButton("Explore rates")
        self.explore_button.setObjectName(_object_name(prefix, "exploreButton"))
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName(_object_name(prefix, "exploreCancelButton"))
        self.cancel_button.setEnabled(False)
        self.status = QLabel(hint)
        self.status.setObjectName(_object_name(prefix, "exploreStatus"))
        self.explore_button.clicked.connect(self.explore)
        self.cancel_button.clicked.connect(self.runner.cancel)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName(_object_name(prefix, "rateSlider"))
        self.slider.setEnabled(False)
        self.slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.slider.setTickInterval(1)
        self.slider.setPageStep(1)
        self.slider.valueChanged.connect(self.show_position)
        self.rate_label = QLabel("")
        self.rate_label.setObjectName(_object_name(prefix, "rateLabel"))
        self.rate_label.setMinimumWidth(90)
        self.table = QLabel("")
        self.table.setObjectName(_object_name(prefix, "exploreTable"))
        self.table.setTextFormat(Qt.TextFormat.RichText)

    def _lay_out(self, view: QWidget, rd: QWidget, rd_stretch: int) -> None:
        """Controls on top, then the slider; below, `view` over the table on the left and the
        rate–distortion plot `rd` on the right (`rd_stretch` against the view's 3)."""
        top = QHBoxLayout()
        top.addWidget(self.explore_button)
        top.addWidget(self.cancel_button)
        top.addWidget(self.status, 1)
        srow = QHBoxLayout()
        srow.addWidget(QLabel("Rate"))
        srow.addWidget(self.slider, 1)
        srow.addWidget(self.rate_label)
        grid = QGridLayout()
        grid.addWidget(view, 0, 0)
        grid.addWidget(rd, 0, 1, 2, 1)
        grid.addWidget(self.table, 1, 0)
        grid.setColumnStretch(0, 3)
        grid.setColumnStretch(1, rd_stretch)
        grid.setRowStretch(0, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addLayout(srow)
        lay.addLayout(grid, 1)

    def _reset_ladder(self) -> None:
        """Forget the shown rung: slider, rate label and table empty (the explorer clears its own views)."""
        self._shown_result = None
        self.slider.setEnabled(False)
        self.slider.setRange(0, 0)
        self.rate_label.setText("")
        self.table.setText("")

    def _start(self, signal, rates: list[float], status: str) -> None:
        """Run the ladder `rates` on `signal` (an image or clip) with the settings of this moment."""
        self.rates = rates
        fit, device, adapt = self.settings()
        self.explore_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText(status)
        self.busy_changed.emit(True)
        self.runner.start(signal, rates, fit, device, self.prior_dirs, keep_going=True, references=True,
                          adapt=adapt)

    def has_signal(self) -> bool:
        raise NotImplementedError

    def is_running(self) -> bool:
        return self.runner.is_running()

    def shutdown(self) -> None:
        self.runner.shutdown()

    def _slide_to(self, res) -> None:
        """`res` was just added to the (sorted) results: widen the slider. The rung being looked at stays in
        view (the slider follows its new index without redrawing); only the first result is shown at once."""
        shown = getattr(self, "_shown_result", None)
        keep = next((i for i, r in enumerate(self.results) if r is shown), None)
        pos = keep if keep is not None else next(i for i, r in enumerate(self.results) if r is res)
        self.slider.blockSignals(True)
        self.slider.setRange(0, len(self.results) - 1)
        self.slider.setValue(pos)
        self.slider.blockSignals(False)
        self.slider.setEnabled(True)
        if keep is None:
            self.show_position(pos)
        else:
            self.shown.emit(pos)
        self.result_added.emit(len(self.results))

    def _on_rate_failed(self, i: int, msg: str) -> None:
        self.status.setText(f"{self.rates[i]:g} {self.RATE_UNIT} skipped: {msg}")

    def _on_done(self, cancelled: bool) -> None:
        self.explore_button.setEnabled(self.has_signal())
        self.cancel_button.setEnabled(False)
        n = len(self.results)
        self.status.setText(("Cancelled: " if cancelled else "") + f"{n} rate{'s' if n != 1 else ''} encoded"
                            + (" — move the slider to compare." if n else "."))
        self.busy_changed.emit(False)
        self.ladder_done.emit(cancelled)
