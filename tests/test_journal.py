"""Resumable long encodes (engine/journal.py): an interrupted audio or image encode continues from its journal to
the very file an uninterrupted one writes; a journal of another encode, or a damaged one, is not used; the CLI
keeps the journal over an interruption and removes it once the output is written."""
from __future__ import annotations

import numpy as np
import pytest

from engine import audio_codec, cli
from engine.codec import run
from engine.journal import Journal
from engine.patch_codec import decode_image_full, encode_image_batch

from .clitools import TINY_FIT, run_cli
from .conftest import FAST_FIT, PATCH_FIT, photo, voiced_audio


@pytest.fixture(scope="module")
def clip():
    x = voiced_audio(0.5, seed=11)
    x[3000:4000] = 0.0                    # silent chunks are not in any batch
    return x


def _encode(clip, prior, journal=None, stop_after=None, **kw):
    """Encode in batches of 7 units; with `stop_after`, abandon the encode once the journal holds that many
    batches (as a cancel or a crash would) -> the result, or None when stopped."""
    gen = audio_codec.encode_audio(clip, 16000, 32, prior=prior, fit=FAST_FIT, max_units=7, journal=journal, **kw)
    if stop_after is None:
        return run(gen)
    for _ in gen:
        if len(journal.records) >= stop_after:
            gen.close()
            return None
    raise AssertionError("the encode ended before it was stopped")


@pytest.mark.parametrize("adapt", [False, True], ids=["latents", "with-delta"])
def test_an_interrupted_encode_resumes_to_the_same_file(clip, audio_latent_prior, audio_latent_prior_dir, tmp_path,
                                                       adapt):
    whole = _encode(clip, audio_latent_prior, adapt=adapt)
    j = Journal(tmp_path / "a.journal")
    assert _encode(clip, audio_latent_prior, j, stop_after=2, adapt=adapt) is None
    assert j.path.exists() and j.n_batches == 5 and len(j.records) == 2      # 35 sounding units, 7 a batch
    again = Journal(tmp_path / "a.journal")
    resumed = _encode(clip, audio_latent_prior, again, adapt=adapt)
    assert again.restored == 2 and again.note == "" and len(again.records) == 5
    assert resumed.data == whole.data
    assert np.array_equal(resumed.unit_blocks, whole.unit_blocks)
    if adapt:
        assert resumed.header.delta_blocks > 0
    y, _ = audio_codec.decode_audio(resumed.data, prior_dirs=[audio_latent_prior_dir])
    assert np.array_equal(y, resumed.reconstruction)
    # a journal holding every batch: nothing is coded again, and the file is the same
    last = Journal(tmp_path / "a.journal")
    assert _encode(clip, audio_latent_prior, last, adapt=adapt).data == whole.data and last.restored == 5


def test_a_journal_of_another_encode_or_a_damaged_one_is_not_used(clip, audio_latent_prior, tmp_path):
    j = Journal(tmp_path / "b.journal")
    _encode(clip, audio_latent_prior, j, stop_after=1)
    other = Journal(j.path)
    gen = audio_codec.encode_audio(clip, 16000, 24, prior=audio_latent_prior, fit=FAST_FIT, max_units=7,
                                   journal=other)
    fresh = run(gen)
    assert other.restored == 0 and "another encode" in other.note
    assert fresh.data == run(audio_codec.encode_audio(clip, 16000, 24, prior=audio_latent_prior, fit=FAST_FIT,
                                                      max_units=7)).data
    data = j.path.read_bytes()
    j.path.write_bytes(data[: len(data) // 2])                  # a truncated journal
    broken = Journal(j.path)
    _encode(clip, audio_latent_prior, broken, stop_after=1)
    assert broken.restored == 0 and "damaged" in broken.note


def test_journals_in_a_folder_are_named_by_their_encode(clip, audio_latent_prior, tmp_path):
    """The app's cache folder: each encode's journal gets a file named by its key, found again by the same
    encode, and a different encode (another rate) writes its own file beside it."""
    folder = tmp_path / "journals"
    first = Journal.in_folder(folder)
    first.remove()                                              # never named: nothing to remove, no error
    assert _encode(clip, audio_latent_prior, first, stop_after=1) is None
    other = Journal.in_folder(folder)
    gen = audio_codec.encode_audio(clip, 16000, 24, prior=audio_latent_prior, fit=FAST_FIT, max_units=7,
                                   journal=other)
    for _ in gen:
        if other.records:
            gen.close()
            break
    assert other.path != first.path and other.note == ""
    assert sorted(folder.glob("*.journal")) == sorted([first.path, other.path])
    again = Journal.in_folder(folder)
    whole = _encode(clip, audio_latent_prior, again)
    assert again.path == first.path and again.restored == 1
    assert whole.data == _encode(clip, audio_latent_prior).data
    again.remove()
    assert list(folder.glob("*.journal")) == [other.path]


def test_a_short_clip_keeps_no_journal(audio_latent_prior, tmp_path):
    j = Journal(tmp_path / "c.journal")
    run(audio_codec.encode_audio(voiced_audio(0.1, seed=2), 16000, 32, prior=audio_latent_prior, fit=FAST_FIT,
                                 journal=j))
    assert not j.path.exists()


def test_cli_keeps_the_journal_over_an_interruption_and_continues(clip, audio_latent_prior_dir, tmp_path, capfd,
                                                                  monkeypatch):
    import soundfile as sf

    from engine import journal as journal_mod

    wav, out = tmp_path / "talk.wav", tmp_path / "talk.cmb"
    sf.write(wav, clip, 16000, subtype="FLOAT")
    monkeypatch.setattr(cli, "_fit_config", lambda a: TINY_FIT)
    monkeypatch.setattr(audio_codec, "MAX_UNITS", 7)
    args = ("encode", wav, "--kbps", 32, "-o", out, "--prior", audio_latent_prior_dir / "tiny_audio_latent.safetensors",
            "--threads", 1, "-q")
    real_add = journal_mod.Journal.add

    def add_then_interrupt(self, record):
        real_add(self, record)
        if len(self.records) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(journal_mod.Journal, "add", add_then_interrupt)
    r = run_cli(capfd, *args)
    assert r.returncode == 130 and not out.exists()
    assert "3 of 5 batches" in r.stderr and "talk.cmb.journal" in r.stderr and "Traceback" not in r.stderr
    assert (tmp_path / "talk.cmb.journal").exists()
    monkeypatch.setattr(journal_mod.Journal, "add", real_add)
    r = run_cli(capfd, *args)
    assert r.returncode == 0, r.stderr
    assert "resumed, 3 of 5 batches" in r.stderr
    assert out.exists() and not (tmp_path / "talk.cmb.journal").exists()
    resumed = out.read_bytes()
    r = run_cli(capfd, *args, "--no-resume")                   # the same encode from the start: the same bytes
    assert r.returncode == 0 and "resumed" not in r.stderr and out.read_bytes() == resumed


def test_a_journal_that_cannot_be_written_does_not_stop_the_encode(clip, audio_latent_prior, tmp_path):
    (tmp_path / "file").write_bytes(b"")
    j = Journal(tmp_path / "file" / "d.journal")                # its folder is a file
    enc = _encode(clip, audio_latent_prior, j)
    assert "cannot be resumed" in j.note and j.failed and not j.path.exists()
    assert enc.data == _encode(clip, audio_latent_prior).data


@pytest.mark.parametrize("group", [0, 2], ids=["image-delta", "group-deltas"])
def test_a_large_image_in_bands_resumes_to_the_same_file(shared_prior_dir, tmp_path, monkeypatch, group):
    """A 48x64 image in bands of 4 patches of 16x16 (three batches) with the network delta coded in the first,
    or with a delta for each group of 2x2 patches (kind 15: a group's delta is coded with the first band that
    holds it and used by the next): stopped after one band and resumed, it is the file of an uninterrupted
    encode."""
    from engine import patch_codec
    from engine.prior import Prior

    monkeypatch.setattr(patch_codec, "MIN_GROUP_BLOCKS", 1)   # a tiny image: groups whatever their budget
    prior = Prior.load(shared_prior_dir / "shared.safetensors")
    img = photo(48, 64, seed=12)

    def encode(journal=None, stop_after=None):
        gen = encode_image_batch([img], 2.0, prior=prior, fit=PATCH_FIT, max_units=4, journal=journal,
                                 delta_group=group)
        if stop_after is None:
            return run(gen)[0]
        for _ in gen:
            if len(journal.records) >= stop_after:
                gen.close()
                return None

    whole = encode()
    assert whole.header.delta_blocks > 0 and len(whole.header.group_deltas) == (4 if group else 0)
    assert encode(Journal(tmp_path / "i.journal"), stop_after=1) is None
    again = Journal(tmp_path / "i.journal")
    resumed = encode(again)
    assert again.restored == 1 and again.n_batches == 3
    assert resumed.data == whole.data
    out, _, _ = decode_image_full(resumed.data, prior_dirs=[shared_prior_dir])
    assert np.array_equal(out, resumed.reconstruction)
