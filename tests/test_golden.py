"""A file written by an earlier build still decodes to the same picture with the shipped prior.

Guards the sender/receiver contract (candidate generator, partition, container, network evaluation)
against accidental change: if this fails, files in the wild would stop decoding.
"""
from pathlib import Path

import numpy as np
from PIL import Image

from engine.codec import decode_full

DATA = Path(__file__).parent / "data"


def test_golden_file_decodes_to_the_stored_picture():
    img, hdr, prior = decode_full((DATA / "astronaut_0.3bpp.cmb").read_bytes())
    want = np.asarray(Image.open(DATA / "astronaut_0.3bpp_decoded.png"))
    assert prior.name == "cifar10-0.3bpp" and hdr.shape == (32, 32, 3) and hdr.n_blocks == 13
    diff = np.abs(img.astype(int) - want.astype(int))
    # bit-exact on the machine that wrote it; other CPUs may round a rare value the other way
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999


def test_golden_patch_file_decodes_to_the_stored_picture():
    """A kind-9 (patch-coded) file written by the build that introduced patches, shipped photo64 prior."""
    from engine.patch_codec import decode_image_full

    img, hdr, prior = decode_image_full((DATA / "coffee_0.6bpp_kind9.cmb").read_bytes())
    want = np.asarray(Image.open(DATA / "coffee_0.6bpp_kind9_decoded.png"))
    assert prior.name == "photo64-0.6bpp" and hdr.shape == (32, 48, 3) and hdr.patch == 64
    diff = np.abs(img.astype(int) - want.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999


def test_golden_audio_file_of_the_first_audio_kind_still_decodes():
    """A kind-8 audio file (one block count for every chunk, no gain) written before level normalisation."""
    from engine.audio_codec import decode_audio_full

    y, sr, hdr, prior = decode_audio_full((DATA / "speech_10kbps_kind8.cmb").read_bytes())
    want = np.load(DATA / "speech_10kbps_kind8_decoded.npy")
    assert prior.name == "speech16k-10kbps" and sr == 16000 and hdr.gain is None and hdr.n_blocks == 30
    assert y.shape == want.shape == (6400, 1)
    assert np.max(np.abs(y - want)) < 1e-4


def test_golden_latent_grid_file_decodes_to_the_stored_picture():
    """A kind-9 file of 2x2 patches coded with the shipped latent-grid prior (grids stitched across the patches,
    shared INR): guards the stitching, the upsampler and the latent layout."""
    from engine.patch_codec import decode_image_full

    img, hdr, prior = decode_image_full((DATA / "coffee_0.3bpp_latent.cmb").read_bytes())
    want = np.asarray(Image.open(DATA / "coffee_0.3bpp_latent_decoded.png"))
    assert prior.name == "photo64-shared-0.3bpp" and prior.latent is not None and prior.latent.shared
    assert hdr.shape == (80, 100, 3) and hdr.patch == 64 and hdr.units == 4
    diff = np.abs(img.astype(int) - want.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999


def test_golden_latent_audio_file_decodes_to_the_stored_samples():
    """A kind-10 file (0.4 s of LibriSpeech test-clean, 8 chunks, 5 block-count classes) coded with the shipped
    latent-grid speech prior: guards the 1-D stitching, the upsampler, the shared INR and the gain."""
    from engine.audio_codec import decode_audio_full

    y, sr, hdr, prior = decode_audio_full((DATA / "speech_12kbps_latent.cmb").read_bytes())
    want = np.load(DATA / "speech_12kbps_latent_decoded.npy")
    assert prior.name == "speech16k-latent-12kbps" and prior.latent is not None and prior.latent.dim == 1
    assert sr == 16000 and hdr.units == 8 and hdr.gain == 49 and len(hdr.class_blocks) == 5
    assert y.shape == want.shape == (6400, 1)
    assert np.max(np.abs(y - want)) < 1e-4


def test_golden_image_delta_file_decodes_to_the_stored_picture():
    """A kind-11 file: 2x2 patches of a shared-network latent prior with the image's network delta coded first
    (engine.hierarchy): guards the delta's scales, block layout, candidate streams and the adapted network."""
    from engine.patch_codec import decode_image_full

    img, hdr, prior = decode_image_full((DATA / "coffee_0.3bpp_delta.cmb").read_bytes())
    want = np.asarray(Image.open(DATA / "coffee_0.3bpp_delta_decoded.png"))
    assert prior.name == "photo64-shared-0.3bpp-s4" and hdr.shape == (80, 100, 3) and hdr.units == 4
    assert hdr.delta_blocks == 45 and hdr.delta_scales == (38, 26, 26)
    diff = np.abs(img.astype(int) - want.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999


def test_golden_clip_delta_file_decodes_to_the_stored_samples():
    """A kind-12 file (0.4 s of LibriSpeech test-clean, shipped 24 kbps latent speech prior) with the clip's
    network delta coded first: guards the audio delta fields, its candidate streams and the adapted network."""
    from engine.audio_codec import decode_audio_full

    y, sr, hdr, prior = decode_audio_full((DATA / "speech_24kbps_delta.cmb").read_bytes())
    want = np.load(DATA / "speech_24kbps_delta_decoded.npy")
    assert prior.name == "speech16k-latent-24kbps-s3" and sr == 16000 and hdr.units == 8 and hdr.gain == 3
    assert hdr.delta_blocks == 62 and hdr.delta_scales == (29, 25, 26)
    assert y.shape == want.shape == (6400, 1)
    assert np.max(np.abs(y - want)) < 1e-4


def test_golden_audio_file_of_a_grown_prior_decodes_to_the_stored_samples():
    """A kind-10 file (0.4 s of LibriSpeech test-clean) coded with a shipped prior that was grown by a latent level
    (`speech16k-latent-24kbps-l800`: 800 cells per chunk before the five original levels): guards the level order
    of the latents, their upsampler and the widened first layer of the shared network."""
    from engine.audio_codec import decode_audio_full

    y, sr, hdr, prior = decode_audio_full((DATA / "speech_24kbps_l800.cmb").read_bytes())
    want = np.load(DATA / "speech_24kbps_l800_decoded.npy")
    assert prior.name == "speech16k-latent-24kbps-l800" and prior.latent.levels == (800, 400, 200, 100, 50, 25)
    assert sr == 16000 and hdr.units == 8 and hdr.gain == 3 and len(hdr.class_blocks) == 3
    assert y.shape == want.shape == (6400, 1)
    assert np.max(np.abs(y - want)) < 1e-4


def test_golden_audio_file_with_a_chunk_envelope_decodes_to_the_stored_samples():
    """A kind-13 file (0.4 s of LibriSpeech test-clean, 1.0 s in, at 24 kbps with the shipped
    `speech16k-latent-24kbps-env` prior): guards the envelope's place in the header, its 4-bit codes and the
    factor each unit's output is multiplied by."""
    from engine.audio_codec import decode_audio_full
    from engine.container import KIND_AUDIO_ENV

    data = (DATA / "speech_24kbps_env.cmb").read_bytes()
    y, sr, hdr, prior = decode_audio_full(data)
    want = np.load(DATA / "speech_24kbps_env_decoded.npy")
    assert data[1] & 0x0F == KIND_AUDIO_ENV   # after the magic byte: version << 4 | kind
    assert prior.name == "speech16k-latent-24kbps-env" and sr == 16000 and hdr.units == 8 and hdr.gain == 3
    assert hdr.envelope == (8, 12, 10, 9, 11, 6, 3, 10) and len(hdr.class_blocks) == 5
    assert y.shape == want.shape == (6400, 1)
    assert np.max(np.abs(y - want)) < 1e-4


def test_golden_group_delta_file_decodes_to_the_stored_picture():
    """A kind-15 file: 3x4 patches of the shipped 0.3 bpp latent prior with a network delta for each of 2x2
    groups of 2x2 patches, coded first: guards the group fields, their order, the candidate streams of each
    group's delta and which network each patch is rendered with."""
    from engine.patch_codec import decode_image_full

    img, hdr, prior = decode_image_full((DATA / "coffee_0.3bpp_groups.cmb").read_bytes())
    want = np.asarray(Image.open(DATA / "coffee_0.3bpp_groups_decoded.png"))
    assert prior.name == "photo64-shared-0.3bpp-s6" and hdr.shape == (130, 200, 3) and hdr.units == 12
    assert hdr.delta_group == 2 and [b for _, b in hdr.group_deltas] == [61, 65, 56, 66]
    assert hdr.group_deltas[0][0] == (34, 26, 22) and hdr.delta_blocks == 248
    diff = np.abs(img.astype(int) - want.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999


def test_golden_three_level_file_decodes_to_the_stored_picture():
    """A kind-15 file with flag bit 0: the 0.3 bpp shipped prior's network adapted at three levels, an
    image-level delta (its own candidate streams, coded first) under a delta for each of 2x2 groups of 2x2
    patches: guards the flag, the image delta's fields and streams, and that each group adds it."""
    from engine.patch_codec import decode_image_full

    data = (DATA / "coffee_0.3bpp_groups3.cmb").read_bytes()
    img, hdr, prior = decode_image_full(data)
    want = np.asarray(Image.open(DATA / "coffee_0.3bpp_groups3_decoded.png"))
    assert prior.name == "photo64-shared-0.3bpp-s6" and hdr.shape == (130, 200, 3) and hdr.units == 12
    assert hdr.delta_group == 2 and [b for _, b in hdr.group_deltas] == [21, 19, 21, 51]
    assert hdr.top_delta == ((28, 25, 19), 130) and hdr.delta_blocks == 242
    diff = np.abs(img.astype(int) - want.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999


def test_golden_audio_file_with_band_gains_decodes_to_the_stored_samples():
    """A kind-5 file (0.4 s of LibriSpeech test-clean, 1.0 s in, at 12 kbps with the shipped
    `speech16k-latent-12kbps-env2` prior, fast preset): flags for the envelope and band gains, the 3-bit codes of
    2 segments x 7 bands, and the short-time filter they drive (engine/audio_bands.py)."""
    from engine.audio_codec import decode_audio_full
    from engine.container import KIND_AUDIO_FLAGS

    data = (DATA / "speech_12kbps_bands.cmb").read_bytes()
    y, sr, hdr, prior = decode_audio_full(data)
    want = np.load(DATA / "speech_12kbps_bands_decoded.npy")
    assert data[1] & 0x0F == KIND_AUDIO_FLAGS
    assert prior.name == "speech16k-latent-12kbps-env2" and sr == 16000 and hdr.units == 8 and hdr.gain == 3
    assert hdr.envelope == (8, 12, 10, 9, 11, 6, 3, 10) and len(hdr.class_blocks) == 5
    assert hdr.bands == (6, 6, 6, 4, 1, 0, 0, 6, 5, 6, 7, 5, 0, 0)
    assert y.shape == want.shape == (6400, 1)
    assert np.max(np.abs(y - want)) < 1e-4


def test_golden_audio_file_with_noise_floors_decodes_to_the_stored_samples():
    """A kind-5 file of band-gain set 3 (the same 0.4 s of LibriSpeech test-clean at 12 kbps, shipped
    `speech16k-latent-12kbps-env2` prior, fast preset): a noise floor per band before 4 segments of 4-bit gains
    for 9 bands, and the per-bin filter the floors drive (engine/audio_bands.py)."""
    from engine.audio_codec import decode_audio_full

    data = (DATA / "speech_12kbps_floors.cmb").read_bytes()
    y, sr, hdr, prior = decode_audio_full(data)
    want = np.load(DATA / "speech_12kbps_floors_decoded.npy")
    assert prior.name == "speech16k-latent-12kbps-env2" and sr == 16000 and hdr.units == 8 and hdr.band_set == 3
    assert hdr.bands[:9] == (0, 0, 4, 10, 8, 9, 9, 0, 0) and len(hdr.bands) == 45
    assert y.shape == want.shape == (6400, 1)
    assert np.max(np.abs(y - want)) < 1e-4


def test_golden_image_with_spectral_floors_decodes_to_the_stored_picture():
    """A kind-15 file with flag bits 0 and 1 (130x200 of scikit-image's coffee at 0.3 bpp, shipped
    `photo64-shared-0.3bpp-t3cd` prior, groups of 2x2 patches, fast preset): the spectral floors' codes after the
    group deltas, and the filter they drive over the whole image (engine/image_floors.py)."""
    from engine.patch_codec import decode_image_full

    data = (DATA / "coffee_0.3bpp_floors.cmb").read_bytes()
    img, hdr, prior = decode_image_full(data)
    want = np.asarray(Image.open(DATA / "coffee_0.3bpp_floors_decoded.png"))
    assert prior.name == "photo64-shared-0.3bpp-t3cd" and hdr.shape == (130, 200, 3) and hdr.delta_group == 2
    assert hdr.floors[:12] == (0, 1, 10, 12, 14, 10, 12, 12, 15, 15, 15, 11) and len(hdr.floors) == 36
    diff = np.abs(img.astype(int) - want.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999


def test_golden_image_with_wiener_filters_decodes_to_the_stored_picture():
    """A kind-15 file with flag bits 0, 1 and 2 (the coffee crop above at 0.3 bpp, shipped
    `photo64-shared-0.3bpp-t3cd` prior, groups of 2x2 patches, fast preset, the Wiener filters' budget raised to
    0.01 bpp: an image this small gets none by default): two luma classes' filters after the spectral floors
    (engine/image_wiener.py)."""
    from engine.patch_codec import decode_image_full

    data = (DATA / "coffee_0.3bpp_wiener.cmb").read_bytes()
    img, hdr, prior = decode_image_full(data)
    want = np.asarray(Image.open(DATA / "coffee_0.3bpp_wiener_decoded.png"))
    assert prior.name == "photo64-shared-0.3bpp-t3cd" and hdr.shape == (130, 200, 3) and hdr.delta_group == 2
    assert hdr.floors[:6] == (0, 2, 8, 11, 13, 11) and len(hdr.wiener) == 27
    assert [i for i, row in enumerate(hdr.wiener) if any(row)] == [21, 24]
    assert hdr.wiener[21] == (71, -25, 3, 19, -36, 25, -37, 15, 4, -8, 8, -4)
    diff = np.abs(img.astype(int) - want.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999
