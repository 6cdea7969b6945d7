"""progan-generate as a subprocess: PNGs, grid and GIF from an export, and the same images from a run.

Both runs are forks of one process (`forked`), so the module pays TensorFlow's start-up once.
"""
import os

import numpy as np
import pytest
from PIL import Image

from cli_processes import forked, tiny_export
from test_export import make_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    gs, base = tiny_export(root)
    run_dir = make_run(root / "run", gs)
    done = forked({
        "from_export": ("generate", [f"--model={base}", "--seeds=1-3", "--gif", "--frames_per_seed=2",
                                     f"--out_dir={root / 'from_export'}"]),
        "from_run": ("generate", [f"--model={run_dir}", "--seeds=1,2", "--nogrid", f"--out_dir={root / 'from_run'}"]),
    }, root)
    return {"root": root, "base": base, "gs": gs, "done": done}


def expected_pngs(base, seeds):
    """Pixels of the exported model's generate_png signature for `seeds`."""
    import tensorflow as tf
    pngs = tf.saved_model.load(str(base / "1")).signatures["generate_png"](seeds=tf.constant(seeds, tf.int64))
    return [tf.io.decode_png(png).numpy() for png in pngs["png_bytes"]]


def test_generate_from_an_export_writes_pngs_grid_and_gif(runs):
    code, out, err = runs["done"]["from_export"]
    assert code == 0, err
    out_dir = runs["root"] / "from_export"
    assert sorted(os.listdir(out_dir)) == ["grid.png", "interpolation.gif", "seed0001.png", "seed0002.png",
                                           "seed0003.png"]
    for seed, pixels in zip([1, 2, 3], expected_pngs(runs["base"], [1, 2, 3])):
        np.testing.assert_allclose(np.asarray(Image.open(out_dir / f"seed{seed:04d}.png")), pixels, atol=1)
    gif = Image.open(out_dir / "interpolation.gif")
    assert gif.n_frames == 6 and gif.size == (16, 16)
    assert Image.open(out_dir / "grid.png").size[0] >= 2 * 16


def test_generate_from_a_run_matches_its_export_seed_for_seed(runs):
    code, out, err = runs["done"]["from_run"]
    assert code == 0, err
    out_dir = runs["root"] / "from_run"
    assert sorted(os.listdir(out_dir)) == ["seed0001.png", "seed0002.png"]
    for seed, pixels in zip([1, 2], expected_pngs(runs["base"], [1, 2])):
        np.testing.assert_allclose(np.asarray(Image.open(out_dir / f"seed{seed:04d}.png")), pixels, atol=1)
