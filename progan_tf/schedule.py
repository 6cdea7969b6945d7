"""The progressive schedule: images seen -> which phase, alpha, batch and learning rate.

Training is a sequence of phases, as in the official code: 4x4 stable, then for every higher resolution a fade phase
(alpha 0 -> 1 linearly in images seen) and a stable phase. The last stable phase runs until `total_kimg`.
"""
import dataclasses

from progan_tf.errors import ConfigError
from progan_tf.resolutions import is_resolution, resolutions_between

# Official defaults (paper §A.1 and the official config for 1024x1024 CelebA-HQ).
DEFAULT_BATCH = {4: 128, 8: 128, 16: 128, 32: 64, 64: 32, 128: 16, 256: 8, 512: 4, 1024: 4}
DEFAULT_LR = {1024: 0.0015}


@dataclasses.dataclass(frozen=True)
class Phase:
    """One phase of training.

    Attributes:
      index: position in the schedule (0 = the 4x4 stable phase).
      resolution: resolution trained (the new, higher one while fading).
      fading: True in a fade phase.
      start: images seen when the phase starts.
      end: images seen when it ends.
      batch_size: global minibatch size.
      learning_rate: Adam learning rate for G and D.
    """
    index: int
    resolution: int
    fading: bool
    start: int
    end: int
    batch_size: int
    learning_rate: float

    @property
    def name(self):
        return "fade" if self.fading else "stable"

    def alpha(self, images_seen):
        """Fade-in progress at `images_seen` (1.0 in stable phases)."""
        if not self.fading:
            return 1.0
        return min(max((images_seen - self.start) / (self.end - self.start), 0.0), 1.0)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Progressive-growing schedule.

    Attributes:
      max_resolution: final resolution (power of two >= 4).
      start_resolution: first trained resolution (4 in the paper).
      growing: False is the ablation "no growing": one stable phase at max_resolution from
        the start, with the image budget of the progressive schedule (--nogrowing).
      batch_sizes: resolution -> global batch; missing resolutions use `default_batch`.
      default_batch: batch for resolutions not in `batch_sizes`.
      learning_rates: resolution -> Adam learning rate; missing resolutions use `learning_rate`.
      learning_rate: Adam learning rate (0.001).
      fade_kimg: thousands of images per fade phase (600).
      stable_kimg: thousands of images per stable phase (600).
      total_kimg: thousands of images in all; the last stable phase absorbs the
        remainder (12 000 for 1024x1024). None: every phase has its normal length.
    """
    max_resolution: int = 1024
    start_resolution: int = 4
    growing: bool = True
    # Per resolution: batch and learning rate.
    batch_sizes: tuple = tuple(sorted(DEFAULT_BATCH.items()))
    default_batch: int = 16
    learning_rates: tuple = tuple(sorted(DEFAULT_LR.items()))
    learning_rate: float = 0.001
    # Phase lengths.
    fade_kimg: float = 600
    stable_kimg: float = 600
    total_kimg: float = 12000

    def __post_init__(self):
        for name in ("batch_sizes", "learning_rates"):  # accept dicts, store hashable tuples
            object.__setattr__(self, name, tuple(sorted(dict(getattr(self, name)).items())))
        if not is_resolution(self.max_resolution):
            raise ConfigError("{resolution}={value} is not a power of two >= 4 (try 32, 256 or 1024)",
                              value=self.max_resolution)
        if not is_resolution(self.start_resolution) or self.start_resolution > self.max_resolution:
            raise ConfigError("{start_resolution}={value} must be a power of two in [4, {resolution}]",
                              value=self.start_resolution)
        for name in ("fade_kimg", "stable_kimg", "learning_rate"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{{{name}}}={{value}} must be positive", value=getattr(self, name))
        if self.total_kimg is not None and not self.total_kimg > 0:
            raise ConfigError("{total_kimg}={value} must be positive (or None: every phase its normal length)",
                              value=self.total_kimg)
        if self.default_batch < 1:
            raise ConfigError("{default_batch}={value} must be positive", value=self.default_batch)
        for name, value_ok in (("batch_sizes", lambda b: isinstance(b, int) and b >= 1),
                               ("learning_rates", lambda lr: lr > 0)):
            bad = {r: v for r, v in getattr(self, name) if not is_resolution(r) or not value_ok(v)}
            if bad:
                raise ConfigError(f"{{{name}}} has bad entries {{value}}: resolutions must be powers of two >= 4 "
                                  f"and values positive", value=bad)

    def batch_size(self, resolution):
        return dict(self.batch_sizes).get(resolution, self.default_batch)

    def learning_rate_at(self, resolution):
        return dict(self.learning_rates).get(resolution, self.learning_rate)

    @property
    def resolutions(self):
        """The resolutions trained, in order."""
        if not self.growing:
            return [self.max_resolution]
        return resolutions_between(self.start_resolution, self.max_resolution)

    @property
    def total_images(self):
        return self.phases()[-1].end

    def phases(self):
        """Every phase in order; the last one ends at total_kimg (or its own length)."""
        fade, stable = round(self.fade_kimg * 1000), round(self.stable_kimg * 1000)
        phases, start = [], 0
        for res in dataclasses.replace(self, growing=True).resolutions:
            for fading in ([False] if res == self.start_resolution else [True, False]):
                length = fade if fading else stable
                phases.append(Phase(len(phases), res, fading, start, start + length,
                                    self.batch_size(res), self.learning_rate_at(res)))
                start += length
        if self.total_kimg is not None:
            last = phases[-1]
            end = round(self.total_kimg * 1000)
            if end <= last.start:
                raise ConfigError("{total_kimg}={value} ends before the final stable phase starts at {start} kimg; "
                                  "raise {total_kimg} or shorten {fade_kimg} / {stable_kimg}",
                                  value=self.total_kimg, start=f"{last.start / 1000:g}")
            phases[-1] = dataclasses.replace(last, end=end)
        if not self.growing:  # one stable phase at the top, on the same budget
            last = phases[-1]
            return [Phase(0, last.resolution, False, 0, last.end, last.batch_size, last.learning_rate)]
        return phases

    def phase_at(self, images_seen):
        """The phase that contains `images_seen` (the last phase once training is done)."""
        for phase in self.phases():
            if images_seen < phase.end:
                return phase
        return self.phases()[-1]
