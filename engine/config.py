"""Frozen configuration records shared by the encoder, the decoder and prior learning.

Everything in :class:`InrConfig` is part of a prior's identity: a file decodes only
with a prior whose architecture is exactly the one it was encoded with.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace


@dataclass(frozen=True)
class InrConfig:
    """Architecture of one SIREN: Fourier features -> `depth` sine layers of `width` -> linear."""

    in_dim: int = 2            # coordinate dimensions (2 for images, 1 for audio)
    out_dim: int = 3           # signal channels
    width: int = 32            # hidden units per layer
    depth: int = 3             # number of sine (hidden) layers
    n_freqs: int = 5           # Fourier-feature frequencies per coordinate
    max_freq: float = 16.0     # highest frequency, in multiples of pi (geometric spacing from 1)
    w0: float = 30.0           # SIREN frequency factor of the first sine layer
    w0_hidden: float = 1.0     # frequency factor of later sine layers
    features: int = 0          # per-point input features besides the coordinates (latent grids; 0: none)

    @property
    def embed_dim(self) -> int:
        return self.in_dim * (1 + 2 * self.n_freqs)

    def layer_shapes(self) -> list[tuple[int, int]]:
        dims = [self.embed_dim + self.features] + [self.width] * self.depth + [self.out_dim]
        return list(zip(dims[:-1], dims[1:]))

    @property
    def n_params(self) -> int:
        return sum(i * o + o for i, o in self.layer_shapes())

    def to_dict(self) -> dict:
        d = asdict(self)
        if not self.features:  # priors made before latent grids existed keep their ids
            del d["features"]
        return d


@dataclass(frozen=True)
class LatentConfig:
    """Positional latent grids (RECOMBINER's learned positional embeddings, in COOL-CHIC's multi-resolution form).

    Every unit (an image patch, or an audio chunk with `dim` 1) owns one grid per level, `levels[l]` cells per
    side (`levels[l]` ** dim cells) of `channels` values, coded like weights. The grids of all units of an image
    (or of one audio channel) are stitched into one grid per level, passed through one learned convolution per
    level (k x k, or k taps in 1-D; shared by every unit, stored in the prior) and upsampled (bi)linearly to
    pixels or samples; the INR reads the `len(levels) * channels` upsampled values beside its Fourier features."""

    levels: tuple[int, ...] = (32, 16, 8, 4, 2)   # cells per patch side at each level (divide the patch side)
    channels: int = 1                             # values per cell
    kernel: int = 3                               # side of the learned convolution on each stitched grid
    scale: float = 20.0                           # feature = scale * coded value (coded values sit at the
                                                  # weights' scale, so one learning rate suits both)
    shared: bool = False                          # the INR's weights live in the prior, learned once for all
                                                  # patches; a patch then codes its latent grids only
    dim: int = 2                                  # grid dimensions: 2 for image patches, 1 for audio chunks

    @property
    def features(self) -> int:
        return len(self.levels) * self.channels

    @property
    def n_latents(self) -> int:
        return sum(g ** self.dim for g in self.levels) * self.channels

    @property
    def n_upsampler(self) -> int:
        """Learned upsampler parameters: per level a (channels, channels, k[, k]) kernel and a bias."""
        c, k = self.channels, self.kernel
        return len(self.levels) * (c * c * k ** self.dim + c)

    def to_dict(self) -> dict:
        d = dict(levels=list(self.levels), channels=self.channels, kernel=self.kernel, scale=self.scale)
        # fields at their default are left out, so priors made before they existed keep their ids
        return d | ({"shared": True} if self.shared else {}) | ({"dim": self.dim} if self.dim != 2 else {})

    @classmethod
    def from_dict(cls, d: dict) -> "LatentConfig":
        return cls(levels=tuple(int(g) for g in d["levels"]), channels=int(d["channels"]),
                   kernel=int(d["kernel"]), scale=float(d["scale"]), shared=bool(d.get("shared", False)),
                   dim=int(d.get("dim", 2)))


@dataclass(frozen=True)
class FitConfig:
    """How the encoder fits and codes posteriors. Only the encoder reads it: none of it is in the file."""

    steps: int = 800               # beta-ELBO steps before coding starts
    lr: float = 2e-3               # Adam learning rate for posterior means and log-stds
    beta_step: float = 0.05        # multiplicative step of the per-block beta controller
    delta_lr: float = 2e-3         # Adam learning rate of an image's network delta (engine/hierarchy.py); was
                                   # lr / 2 until 2026-12-04: +0.08 dB on Kodak crops at 0.3 and 0.5 bpp, +0.30 at 1.0
    refine_first: int = 60         # fine-tuning steps after the first coded group of blocks
    refine_last: int = 10          # ... after the last group (linear in between)
    refine_groups: int = 24        # blocks are coded in this many groups, refined in between
    kl_margin_bits: float | None = None  # aim each block's KL this far below kappa (negative: above); None: the
                                         # modality's default, MARGIN
    seed: int = 0                  # encoder-side randomness (init noise, arrival times)
    sample: bool = False           # code A*'s exact posterior sample of each block (COMBINER) instead of the
                                   # candidate of largest q/p (sharper: +0.15 to 0.2 dB, docs/results.md)
    shortlist: int | None = None   # without `sample`: of this many candidates of largest q/p, send the one
                                   # of least distortion, the uncoded weights at their posterior means
                                   # (1: the first); None: the modality's default, SHORTLIST
    shape_g1: float = 0.0          # audio: weigh the error by each chunk's W(z) = A(z/g1) / A(z/g2)
    shape_g2: float = 0.75         # (engine/audio_shaping.py; g1 = 0: off, the default)
    points: float | None = None    # fraction of a unit's grid points each step measures its distortion on, a
                                   # fresh random subset per step (fitting.PointSubsets); None: the modality's
                                   # default, POINTS, with `steps` scaled by 1 / fraction (the same effort)

    @property
    def margin(self) -> float:
        """The block KL margin in bits (0 where unset and not resolved by `for_modality`)."""
        return 0.0 if self.kl_margin_bits is None else self.kl_margin_bits

    def for_modality(self, modality: str) -> "FitConfig":
        """This config with the modality's default shortlist, KL margin and point fraction where none is set. A default
        fraction f < 1 runs steps / f fitting steps: a step over a fraction f of the points costs about f of a
        full one, so `steps` keeps meaning the same effort; the coding groups are scaled by GROUPS with it."""
        out = self if self.shortlist is not None else replace(self, shortlist=SHORTLIST[modality])
        if out.kl_margin_bits is None:
            out = replace(out, kl_margin_bits=MARGIN[modality])
        if out.points is None:
            f = POINTS[modality]
            groups = max(out.refine_groups, min(GROUP_CAP, out.refine_groups * GROUPS[modality]))
            out = replace(out, points=f, steps=int(round(out.steps / f)), refine_groups=groups)
        return out


# Candidates checked against the true distortion per block, by modality (docs/results.md, session of
# 2026-12-02 evening): speech gains 0.15-0.2 dB SNR at 8 for about a third more encode time. Photos by patches
# gained only 0.02-0.04 dB then; with blocks steered 2 bits above their index (MARGIN) and a fifth cheaper
# steps, 8 gave +0.045 to +0.050 dB on four whole Kodak images at 0.3 bpp for under a tenth more encode time
# (session of 2026-12-07, sixteenth). A 32x32 image coded whole takes about a second (session of 2026-12-05):
# 8 candidates and twice the groups (GROUPS) gave +0.17 dB on 20 CIFAR-10 test images at 1.0 bpp for 1.5x the
# encode time (0.96 -> 1.43 s per image).
SHORTLIST = {"image": 8, "whole image": 8, "audio": 8}

# Block KL margin (bits below kappa each block's KL is steered to) by modality (docs/results.md, session of
# 2026-12-06, fourteenth). The sender codes the candidate of largest q/p, not a posterior sample, so a block may
# hold a little more KL than its kappa-bit index: on four Kodak crops at 0.3 bpp margins of -1 to -4 bits all
# gave +0.03 to +0.05 dB (-2: +0.05) and +1 gave -0.01; speech at 12 kbps moved by -0.04 / +0.02 dB SNR at
# -1 / +1, within its noise, and keeps 0. Not measured for 32x32 images coded whole: 0.
MARGIN = {"image": -2.0, "whole image": 0.0, "audio": 0.0}

# Fraction of the grid points each fitting step measures (docs/results.md, session of 2026-12-04): a photo
# patch's steps cost about the fraction, and four times the steps on a quarter of the pixels gave +0.3 to
# +0.5 dB on Kodak crops in the same CPU time ("image": the patch coder). A 32x32 image coded whole (the CIFAR
# priors) lost 0.25 dB and time with it. Speech measured the same at every fraction once the latent features
# were computed at the drawn points alone (12 kbps, 3-s set: 11.74 dB for all points x 600 steps, 11.73 for
# half x 1200, 11.70 for a quarter x 2400, each slower), so audio measures every point.
POINTS = {"image": 0.25, "whole image": 1.0, "audio": 1.0}

# Groups of blocks coded (each followed by refinement) per group of the preset, by modality, at most GROUP_CAP
# (the best preset's count) (docs/results.md, session of 2026-12-04, sixth). The patch coder's refinement steps
# run on a quarter of the pixels, so a group costs little there: three times the groups of the fast preset (48)
# gave +0.09 dB at 0.3 bpp and +0.14 dB at 0.5 bpp on Kodak crops, and +0.14 dB on all 24 full Kodak images at
# 0.3 bpp (every image better), for about 30 % more encode time. Whole 32x32 images code in twice the preset's
# groups with their shortlist of 8 (SHORTLIST). Audio keeps the preset's count (not measured there).
GROUPS = {"image": 3, "whole image": 2, "audio": 1}
GROUP_CAP = 48


@dataclass(frozen=True)
class LearnConfig:
    """Prior learning by coordinate descent (fit all posteriors, then closed-form prior update)."""

    rate_bpp: float = 1.0          # average KL the training posteriors are held to (bits per pixel)
    n_items: int = 1024            # training items (taken from the start of the data set)
    batch: int = 1024              # items fitted together in one batched step
    first_steps: int = 400         # posterior steps before the first prior update
    round_steps: int = 200         # steps between later prior updates
    rounds: int = 12               # prior updates after the first
    lr: float = 2e-3
    lr_std: float = 3e-2
    beta_step: float = 0.02
    beta_init: float = 3e-6
    warmup: int = 150                  # steps at beta_init before the beta controller starts
    init_logstd_offset: float = -5.0   # posteriors start at sigma_p * e**offset
    out_init_scale: float = 1.0        # output-layer init scale (about the signal's amplitude / 0.5)
    kappa: int = 16
    seed: int = 0
    reparam: bool = False              # RECOMBINER's linear reparameterisation W = H A, A learned here
    mix_lr: float = 1e-3               # Adam learning rate of the shared matrices A
    latent: LatentConfig | None = None # positional latent grids (patch priors), learned with their upsampler
    tile: int = 2                      # latent priors: training items are tile x tile patches (tile chunks in
                                       # audio), stitched
    ups_lr: float = 1e-3               # Adam learning rate of the shared upsampler
    envelope: bool = False             # audio: fit every chunk at the reference level, error weighed by its level
                                       # (the codec's chunk envelope, engine/audio_envelope.py)
    points: float = 1.0                # fraction of each item's grid points a step measures (fitting.PointSubsets)
    shared_warmup: int = 0             # steps before the shared parameters (reparameterisation, upsampler,
                                       # shared INR) move: a warm start refits every posterior from the prior
                                       # mean, and their gradients are meaningless until those fit
    crop_delta: bool = False           # shared-network latent priors: every training crop also fits a network
                                       # delta of its own under the rate, as the encoder gives each group of
                                       # patches (hierarchy.CropDeltas)
    inr: InrConfig = field(default_factory=InrConfig)


# `combiner encode --perceptual`: the noise-shaping filter's (g1, g2) (docs/results.md, session of 2026-12-04,
# fourth: on the 3-s speech set at 12 kbps PESQ 1.48 -> 1.59, STOI 0.83 -> 0.85, SNR 11.74 -> 11.10 dB; at
# 24 kbps PESQ 1.89 -> 2.08, STOI 0.88 -> 0.91, SNR 15.92 -> 15.00). Off by default: the SNR targets rule.
PERCEPTUAL = (0.92, 0.75)


def perceptual(fit: FitConfig) -> FitConfig:
    """`fit` with the noise-shaping filter of `combiner encode --perceptual` (and the app's check box)."""
    return replace(fit, shape_g1=PERCEPTUAL[0], shape_g2=PERCEPTUAL[1])


# Encoder effort presets, shared by the CLI and the app. All produce ordinary files.
PRESETS: dict[str, FitConfig] = {
    "fast": FitConfig(steps=600, refine_first=30, refine_last=5, refine_groups=16),
    "default": FitConfig(),
    "best": FitConfig(steps=3000, refine_first=100, refine_last=20, refine_groups=48),
}
