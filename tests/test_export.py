"""Export: SavedModel signatures loadable without progan_tf, generator.keras, determinism per seed.

The cross-process checks run as concurrent subprocesses (each pays TensorFlow's
start-up once); everything else runs in-process on a 16x16 generator.
"""
import json
import os
import re
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from progan_tf import export, runs
from progan_tf.images import to_unit_range
from progan_tf.networks import NetworkConfig, build_generator, fade_layers, set_alpha
from progan_tf.training.checkpoint import RunCheckpointer, make_checkpoint

TINY = NetworkConfig(resolution=16, latent_size=16, fmap_base=64, fmap_max=16)
SEEDS = [0, 1, 7, 2 ** 40]
VENV_BIN = os.path.dirname(sys.executable)


def tiny_generator(seed=1, resolution=16, fading=False):
    """A 16x16 generator with random (not all-zero) biases, so every weight matters."""
    keras.utils.set_random_seed(seed)
    gs = build_generator(TINY, resolution, fading=fading)
    for w in gs.weights:
        if w.name == "bias":
            w.assign(np.random.default_rng(seed).normal(0, 0.1, w.shape).astype(np.float32))
    return gs


def make_run(run_dir, gs, images_seen=5000):
    """A run directory as the trainer leaves it: config.json plus a checkpoint holding Gs."""
    os.makedirs(run_dir, exist_ok=True)
    runs.write_json_atomic(os.path.join(run_dir, runs.CONFIG_FILE), {"network": TINY.to_dict()})
    fading = bool(fade_layers(gs))
    alpha = float(fade_layers(gs)[0].alpha.numpy()) if fading else 1.0
    state = {"step": 1, "images_seen": images_seen, "resolution": gs.output_shape[1], "fading": fading,
             "phase": "fade" if fading else "stable", "alpha": alpha}
    RunCheckpointer(str(run_dir)).save(make_checkpoint({"Gs": gs}, {}), state)
    return str(run_dir)


def start(code, *args, cwd=None):
    """Start `python -c code args...` in a fresh process (TensorFlow's chatter silenced)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process, timeout=120):
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"exit {process.returncode}\n{out}\n{err}"
    return out


# Runs every signature with TensorFlow alone (what TF Serving or any other consumer
# sees); then, if given a .keras path, loads that after `import progan_tf`.
LOAD_EXPORT = """
    import sys
    import numpy as np
    import tensorflow as tf
    export_dir, seeds, latents_npy, out_npz, keras_path = sys.argv[1:]
    latents = np.load(latents_npy)
    model = tf.saved_model.load(export_dir)
    seeds = tf.constant([int(s) for s in seeds.split(",")], tf.int64)
    sig = model.signatures
    out = dict(images=sig["serving_default"](latents=tf.constant(latents))["images"].numpy(),
               seeded=sig["generate"](seeds=seeds)["images"].numpy(),
               png=sig["generate_png"](seeds=seeds)["png_bytes"].numpy().astype("S"),  # PNGs end in a CRC, never NUL
               metadata=open(model.metadata.asset_path.numpy().decode(), "rb").read())
    assert not any(name.startswith("progan_tf") for name in sys.modules), "progan_tf was imported"
    if keras_path:
        import keras
        import progan_tf  # registers the custom layers; safe_mode stays on
        out["keras"] = keras.models.load_model(keras_path)(latents).numpy()
    np.savez(out_npz, **out)
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    gs = tiny_generator()
    path = export.export_generator(gs, TINY, root / "models" / "tiny" / "1", {"images_seen": 1234})
    return gs, path


@pytest.fixture(scope="module")
def fresh_processes(exported, tmp_path_factory):
    """A fresh process loading the export (then the .keras file), and saved_model_cli, concurrently."""
    _, path = exported
    work = tmp_path_factory.mktemp("fresh")
    latents = np.random.default_rng(0).normal(size=(5, TINY.latent_size)).astype(np.float32)
    np.save(work / "latents.npy", latents)
    # cwd=work: progan_tf is not importable from the working directory either.
    loader = start(LOAD_EXPORT, path, ",".join(map(str, SEEDS)), work / "latents.npy", work / "out.npz",
                   os.path.join(path, export.KERAS_FILE), cwd=work)
    cli = subprocess.Popen([os.path.join(VENV_BIN, "saved_model_cli"), "show", "--dir", path, "--all"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    finish(loader)
    run = dict(np.load(work / "out.npz"))
    return {"latents": latents, "run": run, "keras": run["keras"], "cli": finish(cli)}


def test_saved_model_in_fresh_process_matches_in_memory_gs(exported, fresh_processes):
    gs, _ = exported
    run = fresh_processes["run"]
    expected = to_unit_range(gs(fresh_processes["latents"])).numpy()
    np.testing.assert_allclose(run["images"], expected, atol=1e-6)
    assert run["images"].shape == (5, 16, 16, 3) and run["images"].min() >= 0 and run["images"].max() <= 1
    seeded = to_unit_range(gs(export.seed_latents(SEEDS, TINY.latent_size))).numpy()
    np.testing.assert_allclose(run["seeded"], seeded, atol=1e-6)
    decoded = np.stack([tf.io.decode_png(png).numpy() for png in run["png"]])
    assert decoded.shape == (4, 16, 16, 3) and decoded.dtype == np.uint8
    np.testing.assert_allclose(decoded, np.rint(seeded * 255), atol=1)
    metadata = json.loads(run["metadata"].item())
    assert metadata["images_seen"] == 1234 and metadata["resolution"] == 16 and metadata["latent_size"] == 16
    assert NetworkConfig(**metadata["network_config"]) == TINY


def test_same_seed_is_bit_identical_across_processes(exported, fresh_processes):
    """The fresh process and this one (a second, independent process) load the same export."""
    signatures = tf.saved_model.load(exported[1]).signatures
    seeds = tf.constant(SEEDS, tf.int64)
    np.testing.assert_array_equal(signatures["generate"](seeds=seeds)["images"].numpy(),
                                  fresh_processes["run"]["seeded"])
    np.testing.assert_array_equal(signatures["generate_png"](seeds=seeds)["png_bytes"].numpy().astype("S"),
                                  fresh_processes["run"]["png"])


def test_keras_file_loads_in_fresh_process_with_identical_outputs(exported, fresh_processes):
    gs, _ = exported
    np.testing.assert_array_equal(fresh_processes["keras"], gs(fresh_processes["latents"]).numpy())


def test_saved_model_cli_lists_the_three_signatures(fresh_processes):
    blocks = dict(re.findall(r"signature_def\['(\w+)'\]:\n(.*?)Method name is: ", fresh_processes["cli"], re.S))
    listed = {name: {(kind, key, dtype, shape) for kind, key, dtype, shape in re.findall(
        r"(inputs|outputs)\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+shape: (.+)", block)}
        for name, block in blocks.items()}
    assert listed["serving_default"] == {("inputs", "latents", "DT_FLOAT", "(-1, 16)"),
                                         ("outputs", "images", "DT_FLOAT", "(-1, 16, 16, 3)")}
    assert listed["generate"] == {("inputs", "seeds", "DT_INT64", "(-1)"),
                                  ("outputs", "images", "DT_FLOAT", "(-1, 16, 16, 3)")}
    assert listed["generate_png"] == {("inputs", "seeds", "DT_INT64", "(-1)"),
                                      ("outputs", "png_bytes", "DT_STRING", "(-1)")}


def test_dynamic_batch_and_per_seed_images(exported):
    _, path = exported
    signatures = tf.saved_model.load(path).signatures
    for n in (1, 3):
        images = signatures["serving_default"](latents=tf.zeros([n, TINY.latent_size]))["images"]
        assert images.shape == (n, 16, 16, 3)
    alone = signatures["generate"](seeds=tf.constant([7], tf.int64))["images"][0]
    batched = signatures["generate"](seeds=tf.constant([3, 7, 9], tf.int64))["images"][1]
    # oneDNN picks kernels by batch size: a batch of 3 may round differently from a batch of 1 (1.2e-6 seen);
    # a wrong seed or pixel range differs by far more than 1e-5.
    np.testing.assert_allclose(alone, batched, atol=1e-5)


def test_seed_latents_are_a_pure_function_of_each_seed():
    batch = export.seed_latents([3, 5], 8).numpy()
    np.testing.assert_array_equal(export.seed_latents([5], 8).numpy()[0], batch[1])
    assert not np.allclose(batch[0], batch[1])
    many = export.seed_latents(np.arange(200), 64).numpy()
    assert abs(many.mean()) < 0.05 and abs(many.std() - 1) < 0.05


def test_export_refuses_existing_dirs_and_leaves_no_temp_dirs(tmp_path, exported):
    gs, path = exported
    with pytest.raises(FileExistsError):
        export.export_generator(gs, TINY, path, {})
    target = tmp_path / "1"
    target.mkdir()
    export.export_generator(gs, TINY, target, {"images_seen": 9}, overwrite=True)
    assert export.read_metadata(target)["images_seen"] == 9
    assert sorted(os.listdir(tmp_path)) == ["1"]


def test_export_directories_and_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = export.export_generator(tiny_generator(), TINY, tmp_path / "models" / "1", {})
    finally:
        os.umask(old)
    modes = {os.path.relpath(os.path.join(d, n), path): os.stat(os.path.join(d, n)).st_mode & 0o777
             for d, dirs, files in os.walk(path) for n in dirs + files}
    assert os.stat(path).st_mode & 0o777 == 0o755
    assert modes and all(mode in (0o755, 0o644) for mode in modes.values()), modes


def test_export_run_shows_what_training_showed(tmp_path):
    """Mid-fade, the default export is the fading network at the checkpoint's alpha: the function
    the training grids sample. --resolution picks either complete stable network instead."""
    gs = tiny_generator(seed=2, fading=True)
    set_alpha(gs, 0.3)
    run_dir = make_run(tmp_path / "run", gs, images_seen=4242)
    base = tmp_path / "models"
    first = export.export_run(run_dir, base)
    second = export.export_run(run_dir, base, resolution=8)
    third = export.export_run(run_dir, base, resolution=16)
    assert [os.path.basename(p) for p in (first, second, third)] == ["1", "2", "3"]
    assert export.versions(base) == [1, 2, 3]
    assert export.read_metadata(first)["images_seen"] == 4242
    assert export.read_metadata(first)["checkpoint_phase"] == "fade"
    assert export.read_metadata(first)["alpha"] == pytest.approx(0.3)
    assert export.read_metadata(second)["resolution"] == 8 and export.read_metadata(third)["alpha"] == 1.0
    z = export.seed_latents([4, 5], TINY.latent_size)
    seeds = tf.constant([4, 5], tf.int64)
    served = tf.saved_model.load(first).signatures["generate"](seeds=seeds)["images"]
    np.testing.assert_allclose(served, to_unit_range(gs(z)), atol=1e-5)  # alpha 0.3, as trained
    reloaded = keras.models.load_model(os.path.join(first, export.KERAS_FILE))
    np.testing.assert_allclose(reloaded(z), gs(z), atol=1e-5)
    set_alpha(gs, 1.0)
    stable = tf.saved_model.load(third).signatures["generate"](seeds=seeds)["images"]
    np.testing.assert_allclose(stable, to_unit_range(gs(z)), atol=1e-5)
    assert not np.allclose(served, stable, atol=1e-3)
    with pytest.raises(FileExistsError):
        export.export_run(run_dir, base, version=2)
    assert export.find_export(str(base)) == os.path.join(str(base), "3")
