import keras
import numpy as np
import pytest

from progan_tf.networks import (NetworkConfig, build_discriminator, build_generator, copy_weights, set_alpha)

TINY = NetworkConfig(resolution=32, latent_size=16, fmap_base=128, fmap_max=16)


def _down(x):
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def _up(x):
    return np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)


def test_feature_maps_follow_the_paper():
    paper = NetworkConfig()
    assert [paper.nf(r.bit_length() - 2) for r in paper.resolutions] == [512, 512, 512, 512, 256, 128, 64, 32, 16]


def test_full_size_parameter_counts_match_table_2():
    paper = NetworkConfig()
    g, d = build_generator(paper, 1024), build_discriminator(paper, 1024)
    assert g.count_params() == pytest.approx(23.1e6, abs=0.05e6)
    assert d.count_params() == pytest.approx(23.1e6, abs=0.05e6)
    assert g.output_shape == (None, 1024, 1024, 3) and d.output_shape == (None, 1)


def test_layer_names_carry_the_resolution():
    g = build_generator(TINY, 16, fading=True)
    names = {layer.name for layer in g.layers}
    assert {"g_block_16_conv0", "g_block_16_conv1", "g_torgb_16", "g_torgb_8", "g_fade"} <= names
    d = build_discriminator(TINY, 16, fading=True)
    assert {"d_fromrgb_16", "d_fromrgb_8", "d_block_16_conv0", "d_block_8_conv1", "d_fade"} <= {
        layer.name for layer in d.layers}


@pytest.mark.parametrize("resolution", [8, 16, 32])
def test_grown_models_at_alpha_zero_equal_the_previous_stage(resolution):
    rng = np.random.default_rng(resolution)
    old_g, old_d = build_generator(TINY, resolution // 2), build_discriminator(TINY, resolution // 2)
    # Give biases non-zero values so the identity is checked on every weight, not just kernels.
    for w in old_g.weights + old_d.weights:
        w.assign(rng.standard_normal(w.shape).astype(np.float32) * (0.1 if "bias" in w.name else 1.0))
    new_g, new_d = build_generator(TINY, resolution, fading=True), build_discriminator(TINY, resolution, fading=True)
    copy_weights(old_g, new_g)
    copy_weights(old_d, new_d)
    z = rng.standard_normal((4, TINY.latent_size)).astype(np.float32)
    x = rng.standard_normal((4, resolution, resolution, 3)).astype(np.float32)

    np.testing.assert_allclose(new_g(z).numpy(), _up(old_g(z).numpy()), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(new_d(x).numpy(), old_d(_down(x)).numpy(), rtol=1e-5, atol=1e-5)

    # At alpha = 1 the previous toRGB / fromRGB have no influence.
    set_alpha(new_g, 1.0)
    set_alpha(new_d, 1.0)
    g1, d1 = new_g(z).numpy(), new_d(x).numpy()
    for layer in (new_g.get_layer(f"g_torgb_{resolution // 2}"), new_d.get_layer(f"d_fromrgb_{resolution // 2}")):
        layer.set_weights([w * 5.0 + 1.0 for w in layer.get_weights()])
    np.testing.assert_array_equal(new_g(z).numpy(), g1)
    np.testing.assert_array_equal(new_d(x).numpy(), d1)
    assert not np.allclose(g1, _up(old_g(z).numpy()), atol=1e-3)


def test_fade_then_stable_keeps_the_alpha_one_output():
    fading = build_generator(TINY, 16, fading=True)
    set_alpha(fading, 1.0)
    stable = build_generator(TINY, 16)
    copy_weights(fading, stable)
    z = np.random.default_rng(0).standard_normal((2, TINY.latent_size)).astype(np.float32)
    np.testing.assert_array_equal(stable(z).numpy(), fading(z).numpy())


def test_fused_upsample_generator_equals_the_unfused_one():
    """Same weights (by layer name and shape), same images; only the upsample layers go (here from 16x16,
    so that a generator with both kinds of block is tested)."""
    unfused_config = NetworkConfig(**{**TINY.to_dict(), "fused_upsample": 0})
    from_16 = NetworkConfig(**{**TINY.to_dict(), "fused_upsample": 16})
    for fading in (False, True):
        fused, unfused = build_generator(from_16, 32, fading), build_generator(unfused_config, 32, fading)
        up_layers = {layer.name for layer in unfused.layers} - {layer.name for layer in fused.layers}
        assert up_layers == {"g_block_16_up", "g_block_32_up"}
        assert "g_block_8_up" in {layer.name for layer in fused.layers}  # below 16x16: unfused
        rng = np.random.default_rng(1)
        for w in unfused.weights:
            w.assign(rng.standard_normal(w.shape).astype(np.float32) * (0.1 if "bias" in w.name else 1.0))
        set_alpha(unfused, 0.3)
        set_alpha(fused, 0.3)
        assert sorted(copy_weights(unfused, fused)) == sorted(
            layer.name for layer in unfused.layers if layer.weights and layer.name != "g_fade")
        z = rng.standard_normal((4, TINY.latent_size)).astype(np.float32)
        expected = unfused(z).numpy()
        np.testing.assert_allclose(fused(z).numpy(), expected, rtol=0, atol=2e-5 * np.abs(expected).max())


def test_copy_weights_rejects_models_that_do_not_belong_together():
    other = NetworkConfig(resolution=32, latent_size=16, fmap_base=128, fmap_max=8)
    with pytest.raises(ValueError, match="g_block_4_dense"):
        copy_weights(build_generator(other, 4), build_generator(TINY, 8, fading=True))
    with pytest.raises(ValueError, match="have no weights to copy"):
        copy_weights(build_generator(TINY, 4), build_generator(TINY, 16, fading=True))
    # Reading a stable network out of a fading one needs every layer; growth needs only the old ones.
    fading, stable = build_generator(TINY, 16, fading=True), build_generator(TINY, 16)
    assert "g_block_16_conv0" in copy_weights(fading, stable, require_all=True)
    with pytest.raises(ValueError, match=r"\['g_block_16_conv0'"):
        copy_weights(build_generator(TINY, 8), stable, require_all=True)


def test_invalid_configs_are_rejected():
    with pytest.raises(ValueError, match="power of two"):
        NetworkConfig(resolution=48)
    with pytest.raises(ValueError, match=r"fused_upsample=12 must be 0 \(off\)"):
        NetworkConfig(resolution=32, fused_upsample=12)
    with pytest.raises(ValueError, match=r"fused_downsample=4 must be 0 \(off\)"):
        NetworkConfig(resolution=32, fused_downsample=4)
    with pytest.raises(ValueError, match="not a stage"):
        build_generator(TINY, 64)
    with pytest.raises(ValueError, match="no previous stage"):
        build_discriminator(TINY, 4, fading=True)


@pytest.mark.parametrize("fading", [False, True])
def test_keras_save_load_round_trip(tmp_path, fading):
    rng = np.random.default_rng(3)
    g, d = build_generator(TINY, 16, fading), build_discriminator(TINY, 16, fading)
    set_alpha(g, 0.4)
    set_alpha(d, 0.4)
    z = rng.standard_normal((4, TINY.latent_size)).astype(np.float32)
    x = rng.standard_normal((4, 16, 16, 3)).astype(np.float32)
    for model, data in ((g, z), (d, x)):
        path = str(tmp_path / f"{model.name}.keras")
        model.save(path)
        loaded = keras.models.load_model(path)  # safe_mode stays on
        np.testing.assert_array_equal(loaded(data).numpy(), model(data).numpy())
