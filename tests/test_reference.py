"""The product against tests/reference/, a plain second implementation written from the paper.

Every iteration is checked on its own: the reference starts from the product's state before it.
What is compared, and the margins as measured on this machine:
- Losses: max |product - reference| / |reference| < 1e-4. They agree to 1e-8..1e-6.
- Weight updates of G, D and Gs, in units of the learning rate: e = |update_p - update_r| / lr per
  element. In every tensor 90 % of the elements must agree to UPDATE_TOLERANCE = 0.02 lr, 99.5 % of
  all elements to UPDATE_BULK = 0.1 lr and every element to 5 lr. They agree to about 1e-4 lr; but
  GAN training is chaotic: an element whose gradient is near zero (a sum that cancels), or a
  leaky-ReLU input within rounding of zero, can take the other sign in one implementation, and
  Adam (beta1 = 0) turns that into a whole step the other way. Perturbing the start by 1e-6 did
  that to a handful of elements (up to 2 lr). One leaky unit of a 4x4 layer taking the other slope
  moves the 144 kernel elements of its channel by a few % (seen on one CI machine: 0.032 lr at
  99.5 % of all elements, g_block_4_conv, i.e. 6 % of that tensor), so the tight limit is held per
  tensor at 90 %. A bug moves whole tensors (Adam's bias correction off by one step: 0.41 lr
  everywhere).
- Adam slots m and v per element, relative to their tensor's largest value: 99.5 % < 0.02, all
  < 0.5. They agree to 1e-5, but one leaky-ReLU unit of D taking the other slope moves every G
  gradient by ~0.1 % (seen: 1.3e-3), and a 3-element toRGB bias gradient by up to 0.1.
- Fade alphas of G, D and Gs: exactly the step's alpha.
The one-line semantic bugs of benchmarks/mutants.py exceed these limits by 10x to 10^4x (each flag
test below asserts that its flag moves the step by more than 10 limits).
"""
import dataclasses
import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import shared_strategy

from progan_tf.data.pipeline import ArrayDataset
from progan_tf.data.synthetic import synthetic_images
from progan_tf.layers import LeakyReLU, WeightScaledConv2D, WeightScaledDense
from progan_tf.networks import (NetworkConfig, build_discriminator, build_generator, fade_layers, initialize_weights,
                                set_alpha)
from progan_tf.schedule import Schedule
from progan_tf.training.config import TrainConfig
from progan_tf.training.trainer import Trainer
from reference import progan as ref

TOLERANCE = 1e-4  # losses, relative
UPDATE_TOLERANCE, UPDATE_BULK, UPDATE_MAX = 0.02, 0.1, 5.0  # updates, in lr: 90 % of each tensor / 99.5 % / all
SLOT_TOLERANCE, SLOT_MAX = 2e-2, 0.5  # Adam slots, relative to each tensor's largest value
BULK = 99.5  # the percentile of all elements held to the bulk limits
TENSOR_BULK = 90  # the percentile of each tensor's elements held to UPDATE_TOLERANCE
NET = NetworkConfig(resolution=16, latent_size=8, fmap_base=64, fmap_max=16)  # nf 16, 16, 8; G and D fused from 8
SCHEDULE = Schedule(max_resolution=16, fade_kimg=0.08, stable_kimg=0.08, total_kimg=None,
                    batch_sizes={4: 8, 8: 8, 16: 8})
SOURCE = ArrayDataset(synthetic_images(64, 16)[0])
FADE_16, STABLE_16 = 3, 4  # phase indices: 4 stable, 8 fade, 8 stable, 16 fade, 16 stable
FIRST_STEP = 100  # a step number far from 0, so a draw keyed by anything else shows
SEED = 3
HP = ref.Hyper(g_ema_beta=0.9)  # the paper's values but a faster average, so that 5 steps move Gs


def arch(net):
    return ref.Arch(latent_size=net.latent_size, num_channels=net.num_channels, fmap_base=net.fmap_base,
                    fmap_decay=net.fmap_decay, fmap_max=net.fmap_max, mbstd_group_size=net.mbstd_group_size,
                    use_wscale=net.wscale, use_pixelnorm=net.pixelnorm, fused_downsample=net.fused_downsample)


def weights(model):
    """The product's weights as the reference keys them: {"<layer>/<kernel|bias>": array}."""
    return {f"{layer.name}/{w.name}": w.numpy() for layer in model.layers for w in layer.weights
            if w.name != "alpha"}


def randomize(models, seed):
    """N(0, 1) kernels and N(0, 0.2) biases, so that every weight, biases included, matters."""
    rng = np.random.default_rng(seed)
    for model in models:
        for w in model.weights:
            if w.name != "alpha":
                w.assign(rng.standard_normal(w.shape).astype(np.float32) * (0.2 if w.name == "bias" else 1.0))


def relative_error(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30))


def worst(pairs):
    """(largest relative error, its name) over {name: (got, want)}."""
    errors = {name: relative_error(got, want) for name, (got, want) in pairs.items()}
    name = max(errors, key=errors.get)
    return errors[name], name


# ---- architecture ------------------------------------------------------------------------------

@pytest.mark.parametrize("res,fading", [(4, False), (8, False), (8, True), (16, False), (16, True)])
def test_forward_passes_equal_the_reference(res, fading):
    configs = [NET, dataclasses.replace(NET, fused_upsample=16),  # block 8 unfused: the same function
               dataclasses.replace(NET, fused_downsample=0),  # D pools after the activation: another function
               dataclasses.replace(NET, wscale=False), dataclasses.replace(NET, pixelnorm=False)]
    for config in configs:
        g, d = build_generator(config, res, fading), build_discriminator(config, res, fading)
        randomize([g, d], seed=res)
        set_alpha(g, 0.3)
        set_alpha(d, 0.3)
        alpha = 0.3 if fading else None
        rng = np.random.default_rng(1)
        z = tf.constant(rng.standard_normal((8, NET.latent_size)), tf.float32)
        x = tf.constant(rng.uniform(-1, 1, (8, res, res, 3)), tf.float32)
        want_g = ref.generator(weights(g), arch(config), z, res, alpha)
        want_d = ref.discriminator(weights(d), arch(config), x, res, alpha)
        assert relative_error(g(z), want_g) < TOLERANCE
        assert relative_error(tf.reshape(d(x), [-1]), want_d) < TOLERANCE


@pytest.mark.parametrize("fading", [False, True])
def test_layers_have_the_papers_shapes_and_gains(fading):
    for res in (8, 16):
        for model, shapes in ((build_generator(NET, res, fading), ref.generator_shapes(arch(NET), res, fading)),
                              (build_discriminator(NET, res, fading),
                               ref.discriminator_shapes(arch(NET), res, fading))):
            scaled = {layer.name: layer for layer in model.layers
                      if isinstance(layer, (WeightScaledConv2D, WeightScaledDense))}
            assert sorted(scaled) == sorted(shapes)
            for name, (shape, gain) in shapes.items():
                assert tuple(scaled[name].kernel.shape) == shape, name
                assert scaled[name].gain == pytest.approx(gain, rel=1e-12), name
                channels = NET.nf(1) if name == "g_block_4_dense" else shape[-1]
                assert tuple(scaled[name].bias.shape) == (channels,), name
            slopes = {layer.negative_slope for layer in model.layers if isinstance(layer, LeakyReLU)}
            assert slopes == {ref.LEAK}


# Table 2 of the paper as printed: (layer, parameters); every layer of both 1024x1024 networks.
_G_BLOCKS = [(8, "2.4M", "2.4M"), (16, "2.4M", "2.4M"), (32, "2.4M", "2.4M"), (64, "1.2M", "590k"),
             (128, "295k", "148k"), (256, "74k", "37k"), (512, "18k", "9.2k"), (1024, "4.6k", "2.3k")]
_D_BLOCKS = [(1024, "2.3k", "4.6k"), (512, "9.2k", "18k"), (256, "37k", "74k"), (128, "148k", "295k"),
             (64, "590k", "1.2M"), (32, "2.4M", "2.4M"), (16, "2.4M", "2.4M"), (8, "2.4M", "2.4M")]
TABLE_2_G = [("g_block_4_dense", "4.2M"), ("g_block_4_conv", "2.4M")] + [
    (f"g_block_{r}_conv{i}", p) for r, p0, p1 in _G_BLOCKS for i, p in enumerate((p0, p1))] + [
    ("g_torgb_1024", "51")]
TABLE_2_D = [("d_fromrgb_1024", "64")] + [
    (f"d_block_{r}_conv{i}", p) for r, p0, p1 in _D_BLOCKS for i, p in enumerate((p0, p1))] + [
    ("d_block_4_conv", "2.4M"), ("d_block_4_dense0", "4.2M"), ("d_block_4_dense1", "513")]


def _printed(text):
    """'9.2k' -> (9200, 50): the value and half a unit of its last printed digit."""
    scale = {"k": 1e3, "M": 1e6}.get(text[-1], 1)
    digits = text.rstrip("kM")
    decimals = len(digits.partition(".")[2])
    return float(digits) * scale, 0.5 * scale * 10 ** -decimals


def test_parameter_counts_match_table_2_layer_by_layer():
    paper = NetworkConfig()
    for model, table in ((build_generator(paper, 1024), TABLE_2_G), (build_discriminator(paper, 1024), TABLE_2_D)):
        counted = {layer.name: layer.count_params() for layer in model.layers if layer.weights}
        assert sorted(counted) == sorted(name for name, _ in table)
        for name, printed in table:
            value, half_unit = _printed(printed)
            assert abs(counted[name] - value) <= half_unit, (name, counted[name], printed)
        assert sum(counted.values()) == pytest.approx(23.1e6, abs=0.05e6)  # "Total trainable parameters"


def test_without_wscale_weights_start_he_initialised_and_run_unscaled():
    """--nowscale changes the initial std and the run-time scale, nothing else (Table 1's ablation)."""
    plain = dataclasses.replace(NET, wscale=False)
    for build in (build_generator, build_discriminator):
        scaled, unscaled = build(NET, 16), build(plain, 16)
        initialize_weights(scaled, seed=1)
        initialize_weights(unscaled, seed=1)
        for name, (shape, gain) in {**ref.generator_shapes(arch(NET), 16),
                                    **ref.discriminator_shapes(arch(NET), 16)}.items():
            if name not in [layer.name for layer in scaled.layers]:
                continue
            he_std = gain / math.sqrt(np.prod(shape[:-1]))
            a, b = scaled.get_layer(name), unscaled.get_layer(name)
            np.testing.assert_allclose(b.kernel.numpy(), a.kernel.numpy() * he_std, rtol=1e-6, err_msg=name)
            assert (a.scale, b.scale) == (pytest.approx(he_std), 1.0), name


def test_pixel_norm_sits_on_the_latent_and_after_every_generator_layer():
    """Scaling a layer's kernel by 3 is invisible behind a pixel norm and visible without one."""
    g = build_generator(NET, 16)
    randomize([g], seed=5)
    z = tf.constant(np.random.default_rng(2).standard_normal((4, NET.latent_size)), tf.float32)
    base = g(z).numpy()
    np.testing.assert_allclose(g(z * 7.0).numpy(), base, rtol=1e-4, atol=1e-5)  # z is normalised
    for layer in g.layers:
        if isinstance(layer, (WeightScaledConv2D, WeightScaledDense)) and not layer.name.startswith("g_torgb"):
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel * 3.0, bias * 3.0])
            np.testing.assert_allclose(g(z).numpy(), base, rtol=1e-4, atol=1e-5, err_msg=layer.name)
            layer.set_weights([kernel, bias])


# ---- the training step -----------------------------------------------------------------------

def _trainer(tmp_path, devices, net=NET, schedule=SCHEDULE, **train):
    config = TrainConfig(run_dir=str(tmp_path / "run"), **{"seed": SEED, "g_ema_beta": 0.9, **train})
    return Trainer(net, schedule, config, SOURCE, shared_strategy(*devices), print_fn=lambda *_: None)


def _global_batches(trainer, phase, count):
    """The reals the step will see: a second iterator, each step's replica batches in replica order."""
    data = trainer.dataset_iterator(phase, 0)
    return [tf.concat(trainer.strategy.experimental_local_results(next(data)), 0) for _ in range(count)]


def _slots(optimizer, model):
    """{"<layer>/<weight>/m|v": array}: the Adam slots of `model`'s weights (inside a LossScaleOptimizer too), from
    the optimizer's public `variables`, which Keras names "<the weight's path, / as _>_momentum|velocity"."""
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    slots = {variable.name: variable for variable in optimizer.variables}
    return {f"{w.path}/{kind}": slots[f"{w.path.replace('/', '_')}_{name}"].numpy()
            for w in model.trainable_variables for kind, name in (("m", "momentum"), ("v", "velocity"))}


def _snapshot(models):
    return {"G": weights(models.G), "D": weights(models.D), "Gs": weights(models.Gs),
            "g_opt": _slots(models.g_opt, models.G), "d_opt": _slots(models.d_opt, models.D),
            "t": int(getattr(models.g_opt, "inner_optimizer", models.g_opt).iterations.numpy())}


def _ref_snapshot(state):
    slots = lambda m, v: {**{f"{k}/m": x.numpy() for k, x in m.items()}, **{f"{k}/v": x.numpy() for k, x in v.items()}}
    return {"G": {k: v.numpy() for k, v in state.G.items()}, "D": {k: v.numpy() for k, v in state.D.items()},
            "Gs": {k: v.numpy() for k, v in state.Gs.items()}, "g_opt": slots(state.g_m, state.g_v),
            "d_opt": slots(state.d_m, state.d_v), "t": state.t}


def compare(product, reference):
    """{"<part>:<weight>": (product, reference)} of G, D, Gs and both optimisers' slots.

    The counts and names of what is compared must agree exactly.
    """
    assert product["t"] == reference["t"]
    pairs = {}
    for part in ("G", "D", "Gs", "g_opt", "d_opt"):
        assert sorted(product[part]) == sorted(reference[part]), part
        pairs.update({f"{part}:{k}": (product[part][k], reference[part][k]) for k in reference[part]})
    return pairs


def _state_from(snapshot):
    """A reference State holding the product's weights, Adam slots and step count."""
    as_tf = lambda d: {k: tf.constant(v) for k, v in d.items()}
    slot = lambda part, kind: {k[:-2]: tf.constant(v) for k, v in snapshot[part].items() if k.endswith("/" + kind)}
    return ref.State(as_tf(snapshot["G"]), as_tf(snapshot["D"]), as_tf(snapshot["Gs"]), slot("g_opt", "m"),
                     slot("g_opt", "v"), slot("d_opt", "m"), slot("d_opt", "v"), snapshot["t"])


def run_both(tmp_path, phase_index, hp, devices=("/cpu:0",), steps=5, steps_per_call=4, net=NET, schedule=SCHEDULE,
             baseline=None, draws=ref.draws, **train):
    """Iterations of the product's compiled distributed step, each checked against the reference.

    Each iteration is one call of the k-step function the trainer runs (count 1 of k). The
    reference starts every iteration from the product's state before it (weights, Adam slots
    and step count) with the same reals and random draws. GAN training is chaotic (a leaky-ReLU
    input near zero can take either slope under float rounding, and Adam with beta1 = 0 turns
    tiny gradients into whole steps), so two float32 implementations run apart for 5 steps
    would drift by more than a bug's worth; checked step by step, they agree to 1e-6.

    Args:
      hp: the reference's hyper-parameters, written out by the test (never read from the product).
      steps: iterations, each compared.
      baseline: optional (Hyper, Arch) of a second reference, to show how far a flag moves the step.
      **train: TrainConfig fields of the product.

    Returns:
      (results, baseline results): per iteration (product losses, reference losses,
      {quantity: (product, reference)}, {weight: value before}, learning rate), as `step_errors` takes them.
    """
    trainer = _trainer(tmp_path, devices, net, schedule, steps_per_call=steps_per_call, **train)
    phase = schedule.phases()[phase_index]
    models = trainer.build_phase(phase)
    randomize([models.G, models.D], seed=11)
    randomize([models.Gs], seed=12)  # Gs unlike G, so both terms of the average show
    references = [(hp, arch(net))] + ([baseline] if baseline else [])
    reals = _global_batches(trainer, phase, steps)
    step_fn, data = trainer.make_train_step(models, steps_per_call), trainer.dataset_iterator(phase, 0)
    results = [[] for _ in references]
    for i in range(steps):
        step, alpha = FIRST_STEP + i, 0.3 + 0.01 * i if phase.fading else 1.0
        seen = phase.start + i * phase.batch_size
        before = _snapshot(models)
        pad = [0.0] * (steps_per_call - 1)
        d, g = step_fn(data, tf.constant(step, tf.int64), tf.constant([alpha] + pad, tf.float32),
                       tf.constant([trainer.config.ema_beta(phase.batch_size, seen)] + pad, tf.float32),
                       tf.constant(1))
        product_losses = np.array([d.numpy()[0], g.numpy()[0]])
        after = _snapshot(models)
        # Every fade of G, D and Gs (which samples and exports show) holds the step's alpha.
        fades = {f"alpha:{part}": (layer.alpha.numpy(), np.float32(alpha)) for part in ("G", "D", "Gs")
                 for layer in fade_layers(getattr(models, part))}
        assert len(fades) == (3 if phase.fading else 0)
        z_d, mixing, z_g = draws(SEED, step, phase.batch_size, net.latent_size)
        for r, (ref_hp, ref_arch) in enumerate(references):
            state, d_loss, g_loss = ref.iteration(_state_from(before), ref_arch, ref_hp, phase.resolution, reals[i],
                                                  z_d, mixing, z_g, alpha if phase.fading else None, seen)
            pairs = {**compare(after, _ref_snapshot(state)), **fades}
            flat_before = {f"{part}:{k}": v for part in ("G", "D", "Gs") for k, v in before[part].items()}
            results[r].append((product_losses, np.array([d_loss, g_loss]), pairs, flat_before, ref_hp.lr))
    return results if baseline else results[0]


def _bulk_and_max(values):
    """{name: per-element errors} -> ((the BULK percentile of all elements, worst tensor), (max, where))."""
    flat = np.concatenate([v.ravel() for v in values.values()])
    worst_tensor = max(values, key=lambda k: np.percentile(values[k], BULK))
    worst_max = max(values, key=lambda k: values[k].max())
    return (float(np.percentile(flat, BULK)), worst_tensor), (float(flat.max()), worst_max)


def step_errors(product_losses, reference_losses, pairs, before, lr):
    """The measures of one iteration (module docstring): kind -> (value, where)."""
    updates, slots, alphas = {}, {}, {}
    for key, (got, want) in pairs.items():
        got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
        if key.startswith(("g_opt:", "d_opt:")):
            slots[key] = np.abs(got - want) / max(np.abs(want).max(), 1e-30)
        elif key.startswith("alpha:"):
            alphas[key] = float(np.abs(got - want))
        else:  # the weights moved by the same update
            updates[key] = np.abs((got - before[key]) - (want - before[key])) / lr
    (update_bulk, update_max), (slot_bulk, slot_max) = _bulk_and_max(updates), _bulk_and_max(slots)
    per_tensor = {key: float(np.percentile(e, TENSOR_BULK)) for key, e in updates.items()}
    worst = max(per_tensor, key=per_tensor.get)
    return {"losses": (relative_error(product_losses, reference_losses), "losses"),
            "updates": (per_tensor[worst], worst), "updates_bulk": update_bulk, "updates_max": update_max,
            "slots": slot_bulk, "slots_max": slot_max,
            "alphas": (max(alphas.values(), default=0.0), "alpha")}


LIMITS = {"losses": TOLERANCE, "updates": UPDATE_TOLERANCE, "updates_bulk": UPDATE_BULK, "updates_max": UPDATE_MAX,
          "slots": SLOT_TOLERANCE, "slots_max": SLOT_MAX, "alphas": 0.0}


def errors(results):
    """step_errors of every iteration of `run_both`'s results."""
    return [step_errors(*result) for result in results]


def assert_matches(results):
    for step, errs in enumerate(errors(results)):
        for kind, (err, name) in errs.items():
            assert err <= LIMITS[kind], \
                f"iteration {step + 1}: {kind} of {name} off by {err:.2e} (limit {LIMITS[kind]})"


CASES = [(loss, phase, devices) for loss in ("wgan_gp", "lsgan", "logistic") for phase in (STABLE_16, FADE_16)
         for devices in [("/cpu:0",)]] + [
    ("wgan_gp", STABLE_16, ("/cpu:0", "/cpu:1")), ("wgan_gp", FADE_16, ("/cpu:0", "/cpu:1")),
    ("logistic", FADE_16, ("/cpu:0", "/cpu:1"))]


@pytest.mark.parametrize("loss,phase_index,devices", CASES)
def test_training_step_equals_the_reference(tmp_path, loss, phase_index, devices):
    """Each of 5 iterations: both losses, every G, D and Gs weight, every Adam slot, every alpha."""
    assert_matches(run_both(tmp_path, phase_index, dataclasses.replace(HP, loss=loss), devices, loss=loss))


def _moved(results):
    """How far the product moved from a baseline reference, in limits: the largest error / limit."""
    return max(err / LIMITS[kind] for kind, (err, _) in errors(results)[-1].items() if LIMITS[kind])


# flag: (TrainConfig fields, network, schedule, the reference's hyper-parameters).
FLAG_CASES = {
    "gp_lambda": ({"gp_lambda": 2.0}, NET, SCHEDULE, dataclasses.replace(HP, gp_lambda=2.0)),
    "drift": ({"drift": 0.1}, NET, SCHEDULE, dataclasses.replace(HP, drift=0.1)),
    "r1_gamma": ({"loss": "logistic", "r1_gamma": 1.0}, NET, SCHEDULE,
                 dataclasses.replace(HP, loss="logistic", r1_gamma=1.0)),
    "adam_beta1": ({"adam_beta1": 0.5}, NET, SCHEDULE, dataclasses.replace(HP, beta1=0.5)),
    "adam_beta2": ({"adam_beta2": 0.9}, NET, SCHEDULE, dataclasses.replace(HP, beta2=0.9)),
    "adam_epsilon": ({"adam_epsilon": 1e-3}, NET, SCHEDULE, dataclasses.replace(HP, epsilon=1e-3)),
    "g_ema_beta": ({"g_ema_beta": 0.5}, NET, SCHEDULE, dataclasses.replace(HP, g_ema_beta=0.5)),
    "g_ema_kimg": ({"g_ema_kimg": 0.02, "g_ema_rampup": 0.05}, NET, SCHEDULE,
                   dataclasses.replace(HP, g_ema_kimg=0.02, g_ema_rampup=0.05)),
    "learning_rates": ({}, NET, dataclasses.replace(SCHEDULE, learning_rates={8: 0.01, 16: 0.004}), 
                       dataclasses.replace(HP, lr=0.004)),
    "learning_rate": ({}, NET, dataclasses.replace(SCHEDULE, learning_rate=0.003), dataclasses.replace(HP, lr=0.003)),
    "mbstd_group_size": ({}, dataclasses.replace(NET, mbstd_group_size=2), SCHEDULE, HP),
    "fused_downsample": ({}, dataclasses.replace(NET, fused_downsample=0), SCHEDULE, HP),
}


@pytest.mark.parametrize("flag", sorted(FLAG_CASES))
def test_each_flag_changes_the_step_as_the_reference_predicts(tmp_path, flag):
    """The product with the flag equals the reference with it, and is far from the reference without it."""
    train, net, schedule, hp = FLAG_CASES[flag]
    loss = train.get("loss", "wgan_gp")
    baseline = (dataclasses.replace(HP, loss=loss), arch(NET))
    results, moved = run_both(tmp_path, STABLE_16, hp, steps=2, net=net, schedule=schedule, baseline=baseline,
                              **train)
    assert_matches(results)
    assert _moved(moved) > 10, f"{flag} moves the step by only {_moved(moved):.1f} tolerances"


def test_xla_step_follows_the_reference(tmp_path):
    """--xla (jit_compile) computes the same step: the float32 limits hold for 2 iterations of a fade.

    XLA turns the same Philox bits into other floats (its normal and uniform transforms differ
    from TensorFlow's kernels), so an --xla run draws other latents; the reference is given
    the draws as XLA makes them."""
    def xla_draws(seed, step, batch, latent_size):  # the step a tensor, as in the product (no constant folding)
        return tf.function(lambda s: ref.draws(seed, s, batch, latent_size), jit_compile=True)(tf.constant(step))

    z_plain = ref.draws(SEED, FIRST_STEP, 8, NET.latent_size)[0]
    z_xla = xla_draws(SEED, FIRST_STEP, 8, NET.latent_size)[0]
    assert not np.allclose(z_plain, z_xla)  # else this test would not need xla_draws
    assert_matches(run_both(tmp_path, FADE_16, HP, steps=2, xla=True, draws=xla_draws))


@pytest.mark.parametrize("precision", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_step_follows_the_float32_reference(tmp_path, precision):
    """Both losses of each step within reduced precision's own rounding (float16 keeps 11 bits,
    bfloat16 8): measured 0.2-0.6 % off the float32 reference. A loss-scale bug (the penalty's inner
    gradient left scaled by 2^15) is off by orders of magnitude more. Updates and slots are not
    compared: low-precision gradients flip the sign of many small ones, and the float16 loss scale
    skips the steps whose scaled gradients overflow while it settles."""
    keras.mixed_precision.set_dtype_policy(precision)
    try:
        results = run_both(tmp_path, FADE_16, HP, steps=2, precision=precision)
        conv = build_generator(NET, 8).get_layer("g_block_8_conv0")
        assert (conv.compute_dtype, conv.variable_dtype) == (precision.split("_")[1], "float32")
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    for errs in errors(results):
        assert errs["losses"][0] < 2e-2, errs


# ---- data, growth and the loop ---------------------------------------------------------------

def test_mirror_flips_about_half_of_the_reals_the_step_receives(tmp_path):
    phase = SCHEDULE.phases()[STABLE_16]
    mirrored = _global_batches(_trainer(tmp_path, ("/cpu:0",), mirror=True), phase, 8)
    plain = _global_batches(_trainer(tmp_path, ("/cpu:0",), mirror=False), phase, 8)
    flips = []
    for m, p in zip(mirrored, plain):
        same = np.all(m.numpy() == p.numpy(), axis=(1, 2, 3))
        flipped = np.all(m.numpy() == ref.mirror(p, tf.ones([p.shape[0]], tf.bool)).numpy(), axis=(1, 2, 3))
        assert np.all(same | flipped)  # every real is itself or its mirror image
        flips.append(flipped & ~same)
    assert 0.3 < np.mean(flips) < 0.7


def _growth_expectation(previous, fresh):
    """§3: old layers keep their trained weights, new ones start fresh; Gs's new layers start as G's."""
    G = ref.grow(weights(previous.G), weights(fresh.G))
    return {"G": G, "D": ref.grow(weights(previous.D), weights(fresh.D)),
            "Gs": ref.grow(weights(previous.Gs), weights(fresh.G), fresh_gs=G)}


def test_every_phase_switch_grows_as_the_paper_prescribes(tmp_path):
    trainer = _trainer(tmp_path, ("/cpu:0",))
    phases = SCHEDULE.phases()
    for before, after in zip(phases, phases[1:]):
        previous = trainer.build_phase(before)
        randomize([previous.G, previous.D], seed=before.index)
        randomize([previous.Gs], seed=100 + before.index)
        for opt in (previous.g_opt, previous.d_opt):  # a trained optimiser, which must not carry over
            for v in opt.variables:
                v.assign(tf.ones_like(v) * 7)
        grown, fresh = trainer.build_phase(after, previous), trainer.build_phase(after)
        expected = _growth_expectation(previous, fresh)
        for part in ("G", "D", "Gs"):
            got = weights(getattr(grown, part))
            assert sorted(got) == sorted(expected[part]), (after, part)
            for k in got:
                np.testing.assert_array_equal(got[k], expected[part][k], err_msg=f"{after} {part} {k}")
        for k, w in weights(fresh.G).items():  # new layers: N(0, 1) kernels, zero biases (§4.1)
            if k not in weights(previous.G):
                assert np.all(w == 0) if k.endswith("/bias") else abs(np.std(w) - 1) < 0.3, k
        for opt, model in ((grown.g_opt, grown.G), (grown.d_opt, grown.D)):
            assert int(opt.iterations.numpy()) == 0 and float(opt.learning_rate.numpy()) == pytest.approx(0.001)
            assert all(not np.any(s) for s in _slots(opt, model).values())
        if after.fading:  # the grown networks at alpha = 0 compute what the old ones did
            z = tf.constant(np.random.default_rng(0).standard_normal((8, NET.latent_size)), tf.float32)
            x = tf.constant(np.random.default_rng(1).uniform(-1, 1, (8, after.resolution, after.resolution, 3)),
                            tf.float32)
            np.testing.assert_allclose(grown.G(z).numpy(), ref.upscale(previous.G(z)).numpy(), atol=1e-5)
            np.testing.assert_allclose(grown.D(x).numpy(), previous.D(ref.downscale(x)).numpy(), atol=1e-4)


# 4x4 stable 0-16, 8x8 fade 16-40, 8x8 stable 40-72, at a learning rate so small that the run stays where it
# started: chaos cannot amplify float rounding over the 7 steps, while the loop's own decisions (alpha, draws,
# growth, fresh optimisers, Gs decay) still move every loss, slot and Gs weight by orders of magnitude more.
LOOP_SCHEDULE = Schedule(max_resolution=8, fade_kimg=0.024, stable_kimg=0.016, total_kimg=0.072,
                         batch_sizes={4: 8, 8: 8}, learning_rate=1e-5)


def test_the_training_loop_across_phase_switches_equals_the_reference(tmp_path):
    """trainer.train(): 2 steps at 4x4, 3 fading (alpha 0, 1/3, 2/3 by images seen), 2 at 8x8 stable,
    each step's losses (a tick per step) and the final weights, slots and Gs against the reference."""
    net = dataclasses.replace(NET, resolution=8)
    train = dict(steps_per_call=2, tick_kimg=0.008, checkpoint_kimg=1, grid_size=4, g_ema_kimg=0.02,
                 g_ema_rampup=0.5)
    hp = dataclasses.replace(HP, lr=1e-5, g_ema_kimg=0.02, g_ema_rampup=0.5)
    trainer = _trainer(tmp_path, ("/cpu:0",), net, LOOP_SCHEDULE, **train)
    trainer.train(stop_at_images=56)
    assert int(trainer.models.g_opt.iterations.numpy()) == 2  # fresh at the 8x8 stable phase
    logged = [(t["loss/D"], t["loss/G"]) for t in map(json.loads, open(tmp_path / "run" / "metrics.jsonl"))]
    probe = _trainer(tmp_path / "probe", ("/cpu:0",), net, LOOP_SCHEDULE, **train)
    phases, state, step, previous, losses = LOOP_SCHEDULE.phases(), None, 0, None, []
    for phase, steps in zip(phases, (2, 3, 2)):
        fresh = probe.build_phase(phase)  # the initial weights the trainer draws for this phase
        start = weights(fresh.G), weights(fresh.D), weights(fresh.Gs)
        if previous is not None:
            G = ref.grow(previous.G, start[0])
            start = G, ref.grow(previous.D, start[1]), ref.grow(previous.Gs, start[0], fresh_gs=G)
        state = ref.State.fresh(*start)
        for i, reals in enumerate(_global_batches(probe, phase, steps)):
            alpha = (phase.batch_size * i) / (phase.end - phase.start) if phase.fading else None
            z_d, mixing, z_g = ref.draws(SEED, step, phase.batch_size, net.latent_size)
            state, d_loss, g_loss = ref.iteration(state, arch(net), hp, phase.resolution, reals, z_d, mixing, z_g,
                                                  alpha, images_seen=phase.start + phase.batch_size * i)
            losses.append((d_loss, g_loss))
            step += 1
        previous = state
    assert len(logged) == 7 and relative_error(logged, losses) < TOLERANCE, (logged, losses)
    pairs = compare(_snapshot(trainer.models), _ref_snapshot(state))
    err, name = worst({k: v for k, v in pairs.items() if not k.startswith(("g_opt:", "d_opt:"))})
    assert err < TOLERANCE, f"{name} differs from the reference by {err:.2e}"  # lr 1e-5: the weights stay put
    slots = {k: np.abs(a - b) / np.abs(b).max() for k, (a, b) in pairs.items() if k.startswith(("g_opt:", "d_opt:"))}
    (bulk, where), (largest, at) = _bulk_and_max(slots)
    assert bulk < SLOT_TOLERANCE and largest < SLOT_MAX, (bulk, where, largest, at)


def test_nogrowing_trains_the_final_networks_from_the_start_on_the_same_budget(tmp_path):
    flat = dataclasses.replace(SCHEDULE, growing=False)
    (phase,) = flat.phases()
    assert (phase.resolution, phase.fading, phase.start, phase.end) == (16, False, 0, SCHEDULE.total_images)
    assert (phase.batch_size, phase.learning_rate) == (SCHEDULE.batch_size(16), SCHEDULE.learning_rate_at(16))
    first = _trainer(tmp_path, ("/cpu:0",), NET, flat).build_phase(phase)
    last = _trainer(tmp_path / "p", ("/cpu:0",), NET, SCHEDULE).build_phase(SCHEDULE.phases()[-1])
    for a, b in ((first.G, last.G), (first.D, last.D)):
        assert {k: v.shape for k, v in weights(a).items()} == {k: v.shape for k, v in weights(b).items()}


def test_noema_makes_gs_the_generator_itself(tmp_path):
    """--noema: after a step Gs is G, bit for bit."""
    results = run_both(tmp_path, FADE_16, dataclasses.replace(HP, g_ema_beta=0.0), steps=2, ema=False)
    assert_matches(results)
    pairs = results[-1][2]
    for key, (gs, _) in pairs.items():
        if key.startswith("Gs:"):
            np.testing.assert_array_equal(gs, pairs["G:" + key[3:]][0])


# flag=value -> (where the value must arrive, expected value)
CLI_FLAGS = {
    "--loss=lsgan": (lambda n, s, t: t.loss, "lsgan"),
    "--gp_lambda=3": (lambda n, s, t: t.gp_lambda, 3.0),
    "--drift=0.02": (lambda n, s, t: t.drift, 0.02),
    "--r1_gamma=4": (lambda n, s, t: t.r1_gamma, 4.0),
    "--adam_beta1=0.5": (lambda n, s, t: t.adam_beta1, 0.5),
    "--adam_beta2=0.9": (lambda n, s, t: t.adam_beta2, 0.9),
    "--adam_epsilon=0.001": (lambda n, s, t: t.adam_epsilon, 0.001),
    "--g_ema_beta=0.5": (lambda n, s, t: t.g_ema_beta, 0.5),
    "--mirror": (lambda n, s, t: t.mirror, True),
    "--seed=9": (lambda n, s, t: t.seed, 9),
    "--precision=mixed_bfloat16": (lambda n, s, t: t.precision, "mixed_bfloat16"),
    "--learning_rate=0.002": (lambda n, s, t: s.learning_rate_at(8), 0.002),
    "--learning_rates=16:0.004": (lambda n, s, t: (s.learning_rate_at(16), s.learning_rate_at(32)), (0.004, 0.001)),
    "--batch_sizes=4:8,16:12": (lambda n, s, t: (s.batch_size(4), s.batch_size(16)), (8, 12)),
    "--fade_kimg=7": (lambda n, s, t: s.fade_kimg, 7.0),
    "--stable_kimg=9": (lambda n, s, t: s.stable_kimg, 9.0),
    "--mbstd_group_size=2": (lambda n, s, t: n.mbstd_group_size, 2),
    "--fused_upsample=0": (lambda n, s, t: n.fused_upsample, 0),
    "--fused_downsample=0": (lambda n, s, t: n.fused_downsample, 0),
    "--latent_size=64": (lambda n, s, t: n.latent_size, 64),
    "--fmap_base=256": (lambda n, s, t: n.fmap_base, 256),
    "--fmap_max=32": (lambda n, s, t: n.fmap_max, 32),
    "--fmap_decay=0.5": (lambda n, s, t: n.fmap_decay, 0.5),
    "--num_channels=1": (lambda n, s, t: n.num_channels, 1),
    "--nowscale": (lambda n, s, t: n.wscale, False),
    "--nopixelnorm": (lambda n, s, t: n.pixelnorm, False),
    "--nombstd": (lambda n, s, t: n.mbstd_group_size, 0),
    "--noema": (lambda n, s, t: (t.ema, t.ema_beta(32, 10_000)), (False, 0.0)),
    "--g_ema_kimg=10": (lambda n, s, t: t.g_ema_kimg, 10.0),
    "--g_ema_rampup=0.05": (lambda n, s, t: t.g_ema_rampup, 0.05),
    "--nogrowing": (lambda n, s, t: [(p.resolution, p.end) for p in s.phases()], [(32, 4_200_000)]),  # 4 stages
}


def test_every_math_flag_of_progan_train_reaches_its_config_field():
    from absl import flags

    from progan_tf.cli import options as cli
    base = ["progan-train", "--resolution=32", "--total_kimg=0"]
    defaults = None
    for flag, (get, want) in CLI_FLAGS.items():
        flags.FLAGS.unparse_flags()
        flags.FLAGS(base + [flag])
        got = get(*cli.options_from_flags(flags.FLAGS))
        assert got == (pytest.approx(want) if isinstance(want, float) else want), flag
        if defaults is None:
            flags.FLAGS.unparse_flags()
            flags.FLAGS(base)
            defaults = cli.options_from_flags(flags.FLAGS)
        assert get(*defaults) != want, f"{flag} is the default; the test would not show it arrives"
    flags.FLAGS.unparse_flags()
