"""The chunk envelope (kind-13/14 audio files): codes, the file fields, exact decode, training with it."""
import dataclasses

import numpy as np
import pytest

from engine import audio_envelope as ae, container
from engine.audio_codec import decode_audio_full, encode_audio
from engine.codec import run
from engine.config import InrConfig, LearnConfig
from engine.errors import CmbFormatError
from engine.metrics import snr

from .conftest import FAST_FIT, voiced_audio


def enc(x, prior, kbps=16.0, **kw):
    return run(encode_audio(x, 16000, kbps, prior=prior, fit=FAST_FIT, **kw))


def test_codes_follow_each_chunk_level_and_normalise_inverts():
    rs = np.random.default_rng(0)
    ref = 10 ** (-23 / 20)
    levels_db = np.array([-40.0, -30.0, -12.2, 0.0, 4.4, 15.0, 30.0])       # re the reference level
    chunks = rs.normal(0, 1, (len(levels_db), 400, 1))
    chunks *= (ref * 10 ** (levels_db / 20))[:, None, None] / np.sqrt((chunks ** 2).mean(axis=(1, 2)))[:, None, None]
    mask = np.ones((len(chunks), 400, 1), dtype=np.float32)
    k = ae.codes(chunks, mask)
    want = np.clip(np.round((levels_db - ae.ENV_MIN_DB) / ae.ENV_STEP_DB), 0, ae.ENV_CODES - 1)
    np.testing.assert_array_equal(k, want)
    assert k[0] == 0 and k[-1] == ae.ENV_CODES - 1   # clamped at both ends
    out, w = ae.normalise(chunks.astype(np.float32), mask, k)
    f = ae.factors(k)
    np.testing.assert_allclose(out * f[:, None, None], chunks, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(w[:, 0, 0], f ** 2, rtol=1e-6)
    # the padding of a last chunk neither counts in its level nor gets a weight
    half = mask.copy()
    half[3, 200:] = 0
    padded = chunks.copy()
    padded[3, 200:] = 0
    assert abs(int(ae.codes(padded, half)[3]) - int(k[3])) <= 1
    assert not ae.normalise(padded.astype(np.float32), half, k)[1][3, 200:].any()
    assert ae.codes(np.zeros((1, 50, 1)), np.ones((1, 50, 1)))[0] == 0


def test_envelope_round_trips_through_the_file_and_decodes_exactly(tiny_audio_prior, tiny_audio_prior_dir):
    x = voiced_audio(0.8, seed=11)
    x[6400:] *= np.float32(10 ** (-24 / 20))     # the last 0.4 s is 24 dB down
    x[4000:4400] = 0.0                              # two silent chunks of 200 samples
    r = enc(x, tiny_audio_prior, bands=False)
    assert r.data[1] & 0x0F == container.KIND_AUDIO_ENV
    y, _, hdr, _ = decode_audio_full(r.data, [tiny_audio_prior_dir])
    np.testing.assert_array_equal(y, r.reconstruction)
    env = np.array(hdr.envelope)
    assert hdr == r.header and len(env) == hdr.units == 64
    assert not env[20:22].any() and np.all(r.unit_blocks[20:22] == 0)   # silent units: no blocks, no code
    loud, quiet = env[:20].mean(), env[34:].mean()
    assert loud - quiet == pytest.approx(24 / ae.ENV_STEP_DB, abs=2.0)   # the codes follow the level
    assert not np.any(y[4000:4400]) and snr(x, y[:, 0]) > 3
    plain = enc(x, tiny_audio_prior, envelope=False, bands=False)
    assert plain.data[1] & 0x0F == container.KIND_AUDIO_GAIN and plain.header.envelope is None
    # the envelope's 4 bits per sounding unit come out of the same file budget
    assert abs(len(plain.data) - len(r.data)) <= 0.03 * len(plain.data)


def test_envelope_header_fields_are_checked(tiny_audio_prior):
    r = enc(voiced_audio(0.3, seed=12), tiny_audio_prior, bands=False)   # the envelope ends the header
    hdr, idx = container.read(r.data)
    n_hdr = len(container.header_bytes(hdr))
    start = n_hdr - (sum(1 for b in hdr.unit_blocks if b) * ae.ENV_BITS + 7) // 8
    for cut in range(start, n_hdr + 1):             # truncated inside (or right after) the envelope
        with pytest.raises(CmbFormatError):
            container.read(r.data[:cut])
    rs = np.random.default_rng(3)
    for _ in range(100):                            # bit flips inside the envelope bytes
        bad = bytearray(r.data)
        bad[int(rs.integers(start, n_hdr))] ^= 1 << int(rs.integers(8))
        with pytest.raises(CmbFormatError):
            container.read(bytes(bad))
    for envelope in ((ae.ENV_CODES,) + hdr.envelope[1:], (-1,) + hdr.envelope[1:], hdr.envelope[1:]):
        with pytest.raises(ValueError, match="envelope"):
            container.write(dataclasses.replace(hdr, envelope=envelope), idx)
    silent = dataclasses.replace(hdr, class_blocks=(0,) + hdr.class_blocks,
                                 unit_class=(0,) + tuple(k + 1 for k in hdr.unit_class[1:]))
    n_first = hdr.unit_blocks[0]
    with pytest.raises(ValueError, match="envelope"):   # a unit without blocks carries no code
        container.write(dataclasses.replace(silent, envelope=(1,) + hdr.envelope[1:]), idx[n_first:])
    ok = container.write(dataclasses.replace(silent, envelope=(0,) + hdr.envelope[1:]), idx[n_first:])
    assert container.read(ok)[0].envelope == (0,) + hdr.envelope[1:]
    # kind 14: a clip-level network delta and an envelope in one header
    both = dataclasses.replace(hdr, delta_scales=(3, 4, 5), delta_blocks=2)
    data = container.write(both, np.concatenate([[7, 9], idx]))
    assert data[1] & 0x0F == container.KIND_AUDIO_ENV_DELTA
    back, bidx = container.read(data)
    assert back == both and list(bidx[:2]) == [7, 9]


def test_learning_with_the_envelope(tiny_audio_prior):
    from engine.audio_gain import normalise
    from engine.learn import learn_prior
    from engine.prior import AudioLayout
    import torch

    x = normalise(voiced_audio(0.6, seed=13), 16000)
    x[4800:] *= 0.05                                # a quiet last part: 26 dB down
    chunks = x[: len(x) // 200 * 200].reshape(-1, 200, 1)
    inr = InrConfig(in_dim=1, out_dim=1, width=8, depth=2, n_freqs=2, max_freq=4.0)
    cfg = LearnConfig(rate_bpp=2.0, n_items=len(chunks), batch=len(chunks), first_steps=40, round_steps=20, rounds=1,
                      warmup=20, beta_init=3e-8, out_init_scale=0.1, inr=inr)
    priors = {}
    for env in (False, True):
        priors[env] = run(learn_prior(chunks, dataclasses.replace(cfg, envelope=env), torch.device("cpu"),
                                      audio=AudioLayout(200, 16000)))
    assert priors[True].info["learn"]["envelope"] and not priors[False].info["learn"]["envelope"]
    # fitted at one level, the quiet chunks' weights are no longer pulled towards zero: the prior differs
    assert not np.allclose(priors[True].mu, priors[False].mu)
    with pytest.raises(ValueError, match="audio"):
        run(learn_prior(np.zeros((2, 8, 8, 3), np.uint8), dataclasses.replace(cfg, envelope=True,
                        inr=InrConfig(width=8, depth=2)), torch.device("cpu")))
