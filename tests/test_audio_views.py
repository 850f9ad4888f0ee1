"""Audio widgets on a synthetic chirp (no audio codec exists yet: decoded = original + known noise)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from combiner_app.audio_views import (AudioResultView, SpectrogramView, WaveformView, peak_envelope,  # noqa: E402
                                      snr_db, stft_db)

SR = 16000


def chirp(seconds=2.0, f0=200.0, f1=4000.0, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    k = (f1 - f0) / seconds
    return 0.5 * np.sin(2 * np.pi * (f0 * t + 0.5 * k * t ** 2)), t


def test_peak_envelope_keeps_every_peak():
    x, _ = chirp(10.0)
    x[123_457] = 0.99
    x[54_321] = -0.97
    t, y = peak_envelope(x, SR, max_points=4000)
    assert len(y) <= 4000 and len(t) == len(y)
    assert y.max() == x.max() == 0.99 and y.min() == x.min() == -0.97
    assert np.all(np.diff(t) >= 0) and t[-1] <= (len(x) - 1) / SR
    t2, y2 = peak_envelope(x[:1000], SR, max_points=4000)
    assert np.array_equal(y2, x[:1000]) and t2[1] == 1 / SR


def test_stft_tracks_the_chirp_frequency():
    x, _ = chirp()
    s, times, freqs = stft_db(x, SR, n_fft=512)
    assert s.shape == (257, len(times)) and freqs[-1] == SR / 2
    peak = freqs[s.argmax(0)]
    expected = 200.0 + (4000.0 - 200.0) / 2.0 * times
    assert np.median(np.abs(peak - expected)) < 2 * SR / 512
    assert abs(s.max() - 20 * np.log10(0.5)) < 1.5   # a 0.5 sine reads about -6 dB FS


def test_widgets_render_chirp(qtbot):
    x, _ = chirp()
    rs = np.random.default_rng(0)
    y = x + 0.01 * rs.standard_normal(len(x))
    view = AudioResultView()
    qtbot.addWidget(view)
    view.set_signals(x, y, SR, nbytes=2000)
    view.resize(900, 700)
    view.show()
    qtbot.wait(10)
    assert "SNR" in view.stats.text() and f"{snr_db(x, y):.2f}" in view.stats.text()
    spec = view.spectrograms
    assert set(spec.images) == {"original", "decoded", "difference"}
    rect = spec.images["original"].mapRectToParent(spec.images["original"].boundingRect())
    assert abs(rect.width() - 2.0) < 1e-6 and abs(rect.height() - SR / 2) < 1e-6   # seconds x Hz
    lo, hi = spec.colorbar.levels()
    assert hi - lo == spec.db_range
    # the difference is ~34 dB below the signal
    assert spec.spectra["original"].max() - spec.spectra["difference"].max() > 20
    wf = view.waveforms
    assert not wf.plots                       # hidden pages are drawn when first shown
    view.views.setCurrentWidget(wf)
    view.views.setCurrentWidget(view.overlay)
    assert len(wf.plots) == 3 and all(len(c.getData()[0]) <= 4000 for c in wf.curves.values())
    assert wf.plots[0].getAxis("bottom") is not None
    ov = view.overlay
    assert len(ov.plots) == 1 and set(ov.curves) == {"original", "decoded"}


def test_widgets_accept_int16_stereo(qtbot):
    x, _ = chirp(0.5)
    st = (np.stack([x, x], 1) * 32767).astype(np.int16)
    w = WaveformView(stacked=False)
    s = SpectrogramView()
    qtbot.addWidget(w)
    qtbot.addWidget(s)
    w.set_signals(st, st, SR)
    s.set_signals(st, st, SR)
    assert np.abs(w.curves["original"].getData()[1]).max() <= 1.0
