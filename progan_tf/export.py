"""Export the EMA generator (Gs) as a SavedModel for TF Serving, plus `generator.keras`.

An export is one directory (a TF Serving version directory `<base>/<version>/`, or a run's `final/`) holding:

  saved_model.pb, variables/   signatures that need no Python code to load:
      serving_default  latents float32 [N, latent_size] -> images    float32 [N, R, R, C] in [0, 1]
      generate         seeds   int64   [N]              -> images    float32 [N, R, R, C] in [0, 1]
      generate_png     seeds   int64   [N]              -> png_bytes string  [N]
  assets/metadata.json         resolution, latent size, images seen, network config, ...
  generator.keras              Gs itself (latents -> images in [-1, 1]) for
                               `keras.models.load_model` after `import progan_tf`

The directory is assembled under a temporary name beside its destination and renamed into place when complete,
so TF Serving (which polls for integer directory names) never loads half an export.
"""
import json
import os
import re
import shutil
import tempfile

import tensorflow as tf

import progan_tf
from progan_tf import runs
from progan_tf.images import to_png, to_unit_range

METADATA_FILE = "metadata.json"
KERAS_FILE = "generator.keras"
SIGNATURES = ("serving_default", "generate", "generate_png")
# The second word of every per-seed Philox key: a fixed stream id, so latents of seed s
# never collide with other stateless draws keyed on the same seed elsewhere.
_LATENT_STREAM = 0x5EED


def seed_latents(seeds, latent_size):
    """int64 seeds [N] -> float32 standard-normal latents [N, latent_size]; row i is a pure function of seeds[i].

    Philox is named explicitly: the default "auto" choice may differ between CPU and GPU, and the exported
    `generate` signature must give every seed the same image on any machine.
    """
    seeds = tf.convert_to_tensor(seeds, tf.int64)

    def one(seed):
        key = tf.stack([seed, tf.constant(_LATENT_STREAM, tf.int64)])
        return tf.random.stateless_normal([latent_size], key, alg=tf.random.Algorithm.PHILOX)

    return tf.map_fn(one, seeds, fn_output_signature=tf.TensorSpec([latent_size], tf.float32))


class _ServingModule(tf.Module):
    """The SavedModel's root object: Gs's variables, the metadata asset, three signatures."""

    def __init__(self, gs, latent_size, metadata_path):
        super().__init__(name="progan_generator")
        self._gs = gs
        # Listing the variables (as keras' own ExportArchive does) saves and restores every
        # one of them as plain tf.Variables, whatever the SavedModel makes of Keras objects.
        self.gs_variables = list(gs.variables)
        self.metadata = tf.saved_model.Asset(metadata_path)
        self._latent_size = latent_size

        latents_spec = tf.TensorSpec([None, latent_size], tf.float32, name="latents")
        seeds_spec = tf.TensorSpec([None], tf.int64, name="seeds")
        # Gs traced once, as one function that all three signatures call: a third of the tracing at each export.
        self._images = tf.function(self._images, input_signature=[latents_spec])
        self.serving_default = tf.function(self._images_from_latents, input_signature=[latents_spec])
        self.generate = tf.function(self._images_from_seeds, input_signature=[seeds_spec])
        self.generate_png = tf.function(self._png_from_seeds, input_signature=[seeds_spec])

    def _images(self, latents):
        return to_unit_range(self._gs(latents, training=False))  # [N, R, R, C]

    def _images_from_latents(self, latents):
        return {"images": self._images(latents)}

    def _images_from_seeds(self, seeds):
        return {"images": self._images(seed_latents(seeds, self._latent_size))}

    def _png_from_seeds(self, seeds):
        return {"png_bytes": to_png(self._images(seed_latents(seeds, self._latent_size)))}


def export_generator(gs, network_config, export_dir, metadata, overwrite=False):
    """Write Gs as a SavedModel with three signatures and `generator.keras` into `export_dir`; returns its abspath.

    A fading Gs is exported at its current alpha. `export_dir` is e.g. `export/models/<name>/<version>` or
    `runs/<name>/final` (parent created if needed); with `overwrite` an existing one is removed only after the new
    one is complete, else FileExistsError. `metadata` (JSON-serialisable, e.g. {"images_seen": ..., "run_dir": ...})
    goes into assets/metadata.json beside the fields derived from Gs. ValueError if Gs does not match network_config.
    """
    export_dir = os.path.abspath(export_dir)
    if os.path.exists(export_dir) and not overwrite:
        raise FileExistsError(f"{export_dir} already exists; choose another version or directory")
    resolution, _, channels = gs.output_shape[1:]
    if gs.input_shape[-1] != network_config.latent_size or channels != network_config.num_channels:
        raise ValueError(f"{gs.name!r} (latents {gs.input_shape[-1]}, channels {channels}) does not match "
                         f"the NetworkConfig (latent_size {network_config.latent_size}, "
                         f"num_channels {network_config.num_channels})")
    document = {
        **metadata,
        "resolution": int(resolution),
        "latent_size": network_config.latent_size,
        "num_channels": network_config.num_channels,
        "network_config": network_config.to_dict(),
        "signatures": list(SIGNATURES),
        "progan_tf_version": progan_tf.__version__,
    }
    parent = os.path.dirname(export_dir)
    os.makedirs(parent, exist_ok=True)
    # A dot-name in the same directory: same filesystem (so the rename is atomic), and
    # TF Serving ignores it because it is not an integer.
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(export_dir)}.", suffix=".tmp", dir=parent)
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; a TF Serving of another user must read it
        with tempfile.TemporaryDirectory() as scratch:
            metadata_path = os.path.join(scratch, METADATA_FILE)
            with open(metadata_path, "w", encoding="utf-8") as f:
                json.dump(document, f, indent=2, sort_keys=True)
            module = _ServingModule(gs, network_config.latent_size, metadata_path)
            tf.saved_model.save(module, tmp, signatures={name: getattr(module, name) for name in SIGNATURES})
        gs.save(os.path.join(tmp, KERAS_FILE))
        _rename_into_place(tmp, export_dir, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return export_dir


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _rename_into_place(tmp, export_dir, overwrite):
    if overwrite and os.path.exists(export_dir):
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(export_dir)}.", suffix=".old",
                               dir=os.path.dirname(export_dir))
        os.rename(export_dir, os.path.join(old, "export"))
        os.rename(tmp, export_dir)
        shutil.rmtree(old)
    else:
        # os.rename would silently replace an empty directory that appeared meanwhile.
        os.mkdir(export_dir)
        os.rename(tmp, export_dir)


def versions(export_base):
    """Integer version directories under `export_base`, ascending (missing base -> [])."""
    if not os.path.isdir(export_base):
        return []
    return sorted(int(name) for name in os.listdir(export_base)
                  if re.fullmatch(r"\d+", name) and os.path.isdir(os.path.join(export_base, name)))


def export_run(run_dir, export_base, version=None, resolution=None):
    """Export the Gs of a run's newest checkpoint as `<export_base>/<version>/`; returns its absolute path.

    `export_base` is TF Serving's `base_path` (created if missing); `version` defaults to the highest existing + 1
    (or 1). `resolution` None: the network the checkpoint trains, at its alpha (mid-fade: the fading network, as
    the training grids show it); or one of `runs.resolutions_held(state)` for that stage's stable network.
    RunError if the run has no readable checkpoint (see `runs.load_generator`), FileExistsError if the version exists.
    """
    gs, network_config, state = runs.load_generator(run_dir, resolution)
    if version is None:
        version = (versions(export_base) or [0])[-1] + 1
    metadata = {
        "run_dir": os.path.abspath(run_dir),
        "images_seen": int(state["images_seen"]),
        "checkpoint_resolution": int(state["resolution"]),
        "checkpoint_phase": state["phase"],
        "alpha": float(state["alpha"]) if resolution is None and state["fading"] else 1.0,
        "checkpoint_alpha": float(state["alpha"]),
        "version": int(version),
    }
    return export_generator(gs, network_config, os.path.join(export_base, str(version)), metadata)


def read_metadata(export_dir):
    """The metadata dict stored in an export's assets."""
    return runs.read_json(os.path.join(export_dir, "assets", METADATA_FILE))


def describe(export_dir):
    """One line on what an export holds: 'exported Gs at 32x32 (60.1 kimg, alpha 0.5) to <export_dir>'."""
    metadata = read_metadata(export_dir)
    return (f"exported Gs at {metadata['resolution']}x{metadata['resolution']} "
            f"({metadata['images_seen'] / 1000:.1f} kimg, alpha {metadata['alpha']:g}) to {export_dir}")


def find_export(path):
    """The export directory: `path` itself, or the newest version under a base path; None if there is no SavedModel."""
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    for version in reversed(versions(path)):
        if os.path.isfile(os.path.join(path, str(version), "saved_model.pb")):
            return os.path.join(path, str(version))
    return None
