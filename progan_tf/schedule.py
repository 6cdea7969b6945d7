"""The progressive schedule: images seen -> which phase, alpha, batch and learning rate.

Training is a sequence of phases, as in the official code: 4x4 stable, then for
every higher resolution a fade phase (alpha 0 -> 1 linearly in images seen) and a
stable phase. The last stable phase runs until `total_kimg`.
"""
import dataclasses
import math

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
      fade_kimg: thousands of images per fade phase (600).
      stable_kimg: thousands of images per stable phase (600).
      total_kimg: thousands of images in all; the last stable phase absorbs the
        remainder (12 000 for 1024x1024). None: every phase has its normal length.
      batch_sizes: resolution -> global batch; missing resolutions use `default_batch`.
      learning_rates: resolution -> lr; missing resolutions use `base_lr`.
      default_batch: batch for resolutions not in `batch_sizes`.
      base_lr: Adam learning rate (0.001).
    """
    max_resolution: int = 1024
    start_resolution: int = 4
    fade_kimg: float = 600
    stable_kimg: float = 600
    total_kimg: float = 12000
    batch_sizes: tuple = tuple(sorted(DEFAULT_BATCH.items()))
    learning_rates: tuple = tuple(sorted(DEFAULT_LR.items()))
    default_batch: int = 16
    base_lr: float = 0.001

    def __post_init__(self):
        for name in ("batch_sizes", "learning_rates"):  # accept dicts, store hashable tuples
            value = getattr(self, name)
            object.__setattr__(self, name, tuple(sorted(dict(value).items())))
        if self.start_resolution < 4 or self.start_resolution > self.max_resolution or \
                self.start_resolution & (self.start_resolution - 1):
            raise ValueError(f"start_resolution must be a power of two in [4, max_resolution], "
                             f"got {self.start_resolution}")
        if self.fade_kimg <= 0 or self.stable_kimg <= 0:
            raise ValueError("fade_kimg and stable_kimg must be positive")
        if any(b < 1 for _, b in self.batch_sizes):
            raise ValueError(f"batch sizes must be positive, got {dict(self.batch_sizes)}")

    def without_growing(self):
        """The ablation "no growing": one stable phase at max_resolution with this schedule's image budget."""
        return dataclasses.replace(self, start_resolution=self.max_resolution,
                                   total_kimg=self.total_images / 1000)

    def batch_size(self, resolution):
        return dict(self.batch_sizes).get(resolution, self.default_batch)

    def learning_rate(self, resolution):
        return dict(self.learning_rates).get(resolution, self.base_lr)

    @property
    def resolutions(self):
        lo, hi = int(math.log2(self.start_resolution)), int(math.log2(self.max_resolution))
        return [2 ** k for k in range(lo, hi + 1)]

    @property
    def total_images(self):
        return self.phases()[-1].end

    def phases(self):
        """Every phase in order; the last one ends at total_kimg (or its own length)."""
        fade, stable = round(self.fade_kimg * 1000), round(self.stable_kimg * 1000)
        phases, start = [], 0
        for res in self.resolutions:
            kinds = [False] if res == self.start_resolution else [True, False]
            for fading in kinds:
                length = fade if fading else stable
                phases.append(Phase(len(phases), res, fading, start, start + length,
                                    self.batch_size(res), self.learning_rate(res)))
                start += length
        if self.total_kimg is not None:
            last = phases[-1]
            end = round(self.total_kimg * 1000)
            if end <= last.start:
                raise ValueError(f"total_kimg={self.total_kimg} ends before the final stable phase "
                                 f"starts at {last.start / 1000:g} kimg; raise total_kimg or shorten phases")
            phases[-1] = dataclasses.replace(last, end=end)
        return phases

    def phase_at(self, images_seen):
        """The phase that contains `images_seen` (the last phase once training is done)."""
        for phase in self.phases():
            if images_seen < phase.end:
                return phase
        return self.phases()[-1]
