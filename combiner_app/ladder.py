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
        """`res` was just added to the (sorted) results: widen the slider and show it."""
        self.slider.setRange(0, len(self.results) - 1)
        self.slider.setEnabled(True)
        pos = self.results.index(res)
        if self.slider.value() == pos:
            self.show_position(pos)
        else:
            self.slider.setValue(pos)
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
