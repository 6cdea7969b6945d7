"""Images from a trained generator: by latents or by seeds, from a run or an export alike."""
import os

import numpy as np
import tensorflow as tf

from progan_tf import export, runs
from progan_tf.errors import ConfigError
from progan_tf.images import make_grid, save_gif, save_png, to_unit_range, unit_to_uint8


class Sampler:
    """Images from latents or seeds, from a run's checkpoint or from an export, alike.

    `images_fn`: float32 latents [N, latent_size] -> float32 images [N, R, R, C] in [0, 1]. Both sources give the
    same image for a seed (up to float rounding between Keras and the SavedModel), via `export.seed_latents`.
    """

    def __init__(self, images_fn, latent_size, resolution):
        self.images_fn = images_fn
        self.latent_size = latent_size
        self.resolution = resolution

    @classmethod
    def from_run(cls, run_dir, resolution=None):
        """Gs of the newest checkpoint of `run_dir` (see `runs.load_generator` for `resolution`)."""
        gs, network_config, _ = runs.load_generator(run_dir, resolution)
        return cls(lambda z: to_unit_range(gs(z, training=False)).numpy(), network_config.latent_size,
                   gs.output_shape[1])

    @classmethod
    def from_export(cls, export_dir):
        """The `serving_default` signature of an exported SavedModel."""
        signature = tf.saved_model.load(export_dir).signatures["serving_default"]
        metadata = export.read_metadata(export_dir)
        return cls(lambda z: signature(latents=tf.constant(z, tf.float32))["images"].numpy(),
                   metadata["latent_size"], metadata["resolution"])

    def latents(self, seeds):
        """float32 latents [N, latent_size] of int seeds [N]."""
        return export.seed_latents(np.asarray(seeds, np.int64), self.latent_size).numpy()

    def images(self, latents, batch_size=16):
        """uint8 images [N, R, R, C] of float32 latents [N, latent_size], in batches."""
        latents = np.asarray(latents, np.float32)
        out = [self.images_fn(latents[i:i + batch_size]) for i in range(0, len(latents), batch_size)]
        return unit_to_uint8(np.concatenate(out))


def interpolation_latents(latents, steps):
    """A closed latent walk: K >= 2 keyframes [K, latent_size] -> float32 [K * steps, latent_size], ending at the first.

    `steps` frames per transition, interpolated spherically (not linearly) to keep the walk at the norm typical of
    Gaussian latents instead of cutting through the low-norm interior.
    """
    latents = np.asarray(latents, np.float64)
    frames = []
    for a, b in zip(latents, np.roll(latents, -1, axis=0)):
        cos = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
        omega = np.arccos(np.clip(cos, -1.0, 1.0))
        for t in np.arange(steps) / steps:
            if omega < 1e-6:  # parallel keyframes: slerp's denominator vanishes and lerp is exact
                frames.append((1 - t) * a + t * b)
            else:
                frames.append((np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega))
    return np.asarray(frames, np.float32)


def open_sampler(model, resolution=None):
    """A Sampler of `model`: a run directory, an export version directory, or a base of versions.

    `resolution` applies to runs only (see `runs.load_generator`); ConfigError if it does not apply, or if `model`
    is none of these.
    """
    if (state := runs.read_state(model)) is not None:
        if resolution and resolution not in runs.resolutions_held(state):
            raise ConfigError("{resolution}={value}: the newest checkpoint ({phase} phase) holds a complete "
                              "generator only at {held}", value=resolution, phase=state["phase"],
                              held=runs.resolutions_held(state))
        return Sampler.from_run(model, resolution or None)
    export_dir = export.find_export(model) if os.path.isdir(model) else None
    if export_dir is None:
        raise ConfigError("{model}={path} holds neither a checkpoint (checkpoints/state.json) nor a SavedModel "
                          "(saved_model.pb, or integer version directories)", path=model)
    if resolution:
        raise ConfigError("{resolution} applies to run directories only; an export has one resolution")
    return Sampler.from_export(export_dir)


def write_samples(sampler, out_dir, seeds, png=True, grid=True, gif=False, grid_columns=0, frames_per_seed=16,
                  frame_ms=80, batch_size=16):
    """Images of `seeds` as seedNNNN.png files, grid.png and interpolation.gif in `out_dir`; returns the paths."""
    os.makedirs(out_dir, exist_ok=True)
    latents = sampler.latents(seeds)
    images = sampler.images(latents, batch_size)  # [N, R, R, C] uint8
    written = []
    if png:
        for seed, image in zip(seeds, images):
            written.append(os.path.join(out_dir, f"seed{seed:04d}.png"))
            save_png(image, written[-1])
    if grid:
        written.append(os.path.join(out_dir, "grid.png"))
        save_png(make_grid(images, grid_columns or None), written[-1])
    if gif:
        written.append(os.path.join(out_dir, "interpolation.gif"))
        save_gif(sampler.images(interpolation_latents(latents, frames_per_seed), batch_size), written[-1], frame_ms)
    return written
