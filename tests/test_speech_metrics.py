"""Speech measures on long clips: the PESQ library crashes the process on a few minutes of audio, so
metrics.pesq_wb scores a long clip in segments (engine/metrics.py)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np

from engine import metrics

from .conftest import voiced_audio


def test_pesq_of_a_long_clip_is_the_weighted_mean_of_its_segments(monkeypatch):
    rng = np.random.default_rng(0)
    x = np.concatenate([voiced_audio(2.0, seed=s) for s in range(5)])            # 10 s
    y = x + 0.01 * rng.standard_normal(x.shape).astype(np.float32)
    whole = metrics.pesq_wb(x, y, 16000)
    monkeypatch.setattr(metrics, "PESQ_SECONDS", 4)                                # 3 segments of 3.33 s
    parts = [metrics.pesq_wb(a, b, 16000) for a, b in zip(np.array_split(x, 3), np.array_split(y, 3))]
    segmented = metrics.pesq_wb(x, y, 16000)
    assert whole is not None and all(p is not None for p in parts)
    assert abs(segmented - np.mean(parts)) < 1e-4                                 # near-equal lengths
    assert 1.0 <= segmented <= 4.65


def test_pesq_of_five_minutes_does_not_crash():
    """In a child process, as the crash it guards against is a segfault that would take pytest with it."""
    code = ("import numpy as np; from engine import metrics; from tests.conftest import voiced_audio; "
            "x = np.tile(voiced_audio(3.0, seed=1), 100); "
            "y = x + 0.01 * np.random.default_rng(0).standard_normal(x.shape).astype(np.float32); "
            "print(metrics.pesq_wb(x, y, 16000))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-500:]
    assert 1.0 <= float(out.stdout.strip()) <= 4.65


def test_published_decodes_are_scored_like_ours(tmp_path):
    """speech_rd --published: another codec's decodes of the one clip are scored by the same measures, at the
    rate in their names, in rate order; a file that is not a decode of the clip is refused."""
    import pytest
    import soundfile as sf

    from benchmarks.speech_rd import published_scores

    sr = 16000
    x = voiced_audio(1.0, sr)[:, None]                               # (N, 1)
    noisy = (x + 0.01 * np.random.default_rng(0).standard_normal(x.shape)).astype(np.float32)
    folder = tmp_path / "pub"
    folder.mkdir()
    sf.write(folder / "decoded_10.5kbps_x.wav", noisy, sr, subtype="FLOAT")
    sf.write(folder / "decoded_5kbps.wav", x, sr, subtype="FLOAT")
    sf.write(folder / "notes.wav", x, sr, subtype="FLOAT")          # no rate in the name: skipped
    rows = published_scores(folder, ("clip.wav", x, sr))
    assert [r["kbps"] for r in rows] == [5.0, 10.5]
    want = metrics.speech_metrics(x, noisy, sr)
    assert rows[1]["snr"] == pytest.approx(want["snr"], abs=1e-3) and rows[1]["snr"] < 40
    assert rows[0]["snr"] > 100                                      # the exact copy
    sf.write(folder / "decoded_8kbps.wav", x[: sr // 2], sr, subtype="FLOAT")
    with pytest.raises(SystemExit, match="not a decode"):
        published_scores(folder, ("clip.wav", x, sr))


def test_error_bands_puts_a_tones_error_in_its_band_and_a_loud_chunks_error_in_the_loud_third():
    """benchmarks/error_bands.py: an error that is a 5 kHz tone shows as the 4-8 kHz band's error, far above the
    other bands'; an error confined to the loudest chunks carries the loudest third's whole share."""
    from benchmarks.error_bands import band_table, loudness_table

    sr = 16000
    x = voiced_audio(1.2, sr).astype(np.float64)                      # 24 chunks of 800
    t = np.arange(x.shape[0]) / sr
    tone = 1e-3 * np.sin(2 * np.pi * 5000 * t)
    rows = band_table(x, {"a": tone}, sr)[2:]
    err = {r.split(" | ")[0].lstrip("| "): float(r.split(" | ")[2]) for r in rows}
    assert max(err, key=err.get) == "4000–8000" and err["4000–8000"] > max(v for k, v in err.items()
                                                                           if k != "4000–8000") + 20
    level = (x.reshape(-1, 800) ** 2).mean(1)
    loud = np.argsort(level)[-8:]
    e = np.zeros_like(x).reshape(-1, 800)
    e[loud] = 1e-3
    third = loudness_table(x, {"a": e.reshape(-1)})[-1]                # the loudest third's row
    assert third.startswith("| loudest third") and third.rstrip(" |").endswith("1.00")
