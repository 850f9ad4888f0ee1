"""The `combiner` CLI on audio, in subprocesses: encode a WAV at a kbps target, info, decode back to WAV."""
import re

import numpy as np
import pytest
import soundfile as sf

from engine.audio_codec import decode_audio

from .conftest import voiced_audio
from .clitools import run_cli
from .test_cli import assert_clean_error, cli


@pytest.fixture(scope="module")
def stereo_wav(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_audio")
    x = np.stack([voiced_audio(0.25, 22050, seed=1), voiced_audio(0.25, 22050, seed=2)], axis=1)
    p = d / "clip.wav"
    sf.write(p, x, 22050, subtype="PCM_24")
    return d, p, x


def test_audio_encode_info_decode(stereo_wav, tiny_audio_prior_dir, capfd):
    """In-process; test_audio_errors runs the CLI as a real process."""
    d, wav, x = stereo_wav
    out = d / "clip.cmb"
    r = run_cli(capfd, "encode", wav, "--kbps", 24, "-o", out, "--prior", tiny_audio_prior_dir / "tiny_audio.safetensors",
            "--preset", "fast", "-q")
    assert r.returncode == 0, r.stderr
    assert "kbps" in r.stdout and "SNR" in r.stdout
    size = out.stat().st_size
    units = 2 * 20                                     # 0.25 s -> 4000 samples at 16 kHz = 20 chunks per channel
    target = 24000 * len(x) / 22050 / 8
    assert abs(size - target) <= units * 16 / 8 / 2 + 1   # nearest block count: within half a block per unit
    r = run_cli(capfd, "info", out, "--prior-dir", tiny_audio_prior_dir)
    assert r.returncode == 0, r.stderr
    for pattern in [r"modality:\s+audio", r"samples:\s+5512\n", r"channels:\s+2\n", r"sample rate:\s+22050 Hz",
                    rf"bytes:\s+{size}\n", r"kbps:\s+2[345]\.", r"units:\s+40 ", r"prior:\s+tiny-audio-test"]:
        assert re.search(pattern, r.stdout), (pattern, r.stdout)
    back = d / "back.wav"
    r = run_cli(capfd, "decode", out, "-o", back, "--prior-dir", tiny_audio_prior_dir)
    assert r.returncode == 0, r.stderr
    y, sr = sf.read(back, dtype="float32", always_2d=True)
    assert sr == 22050 and y.shape == x.shape
    ref, _ = decode_audio(out.read_bytes(), [tiny_audio_prior_dir])
    assert np.max(np.abs(y - ref)) <= 1.0 / 32767 + 1e-6              # 16-bit WAV of what the engine decodes


def test_audio_errors(stereo_wav, tmp_path, tiny_audio_prior_dir):
    d, wav, _ = stereo_wav
    assert_clean_error(cli("encode", wav, "--bpp", 1), "--kbps")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt junk")
    assert_clean_error(cli("encode", bad, "--kbps", 10), "not a readable audio file")
    assert not (tmp_path / "bad.cmb").exists()
