"""Sampling: latent walks through keyframes, the same images by seed from a run and from its export."""
import numpy as np

from progan_tf import export, sampling
from test_export import make_run, tiny_generator


def test_interpolation_latents_pass_through_every_keyframe():
    keys = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    walk = sampling.interpolation_latents(keys, 4)
    assert walk.shape == (12, 8)
    np.testing.assert_allclose(walk[::4], keys, atol=1e-6)
    norms = np.linalg.norm(walk, axis=1)
    assert norms.min() > 0.8 * np.linalg.norm(keys, axis=1).min()  # spherical, not through the middle


def test_a_run_and_its_export_give_the_same_images_by_seed(tmp_path):
    gs = tiny_generator(seed=5)
    run_dir = make_run(tmp_path / "run", gs)
    path = export.export_run(run_dir, tmp_path / "models")
    from_run, from_export = sampling.open_sampler(run_dir), sampling.open_sampler(str(tmp_path / "models"))
    seeds = [0, 3, 11]
    a = from_run.images(from_run.latents(seeds))
    b = from_export.images(from_export.latents(seeds))
    assert a.dtype == np.uint8 and a.shape == (3, 16, 16, 3)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert sampling.open_sampler(path).resolution == 16


def test_write_samples_writes_what_it_is_asked(tmp_path):
    sampler = sampling.open_sampler(make_run(tmp_path / "run", tiny_generator(seed=6)))
    written = sampling.write_samples(sampler, str(tmp_path / "out"), [1, 2], png=True, grid=True, gif=True,
                                     frames_per_seed=2)
    assert sorted(map(lambda p: p.rsplit("/", 1)[1], written)) == ["grid.png", "interpolation.gif", "seed0001.png",
                                                                    "seed0002.png"]
