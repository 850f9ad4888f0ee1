"""Ladder bookkeeping shared by the image and audio rate explorers: the slider follows the results as they
arrive, and the controls and status line follow the background run. The explorer supplies `results`, `rates`,
the widgets and signals named below, `RATE_UNIT` and `has_signal()`."""
from __future__ import annotations


class LadderMixin:
    RATE_UNIT = ""

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
