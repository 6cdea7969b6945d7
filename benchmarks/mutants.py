"""Mutation self-check: does the default test suite catch one-line semantic bugs?

Each mutant replaces one line fragment of the package (it must occur exactly once in its
file). For each, a copy of the committed tree (`git archive HEAD`) gets the mutation, and
the test files that cover that module run in it (`pytest -x`, stopping at the first
failure). A mutant is caught when the tests fail. The table and a JSON land in --out.

  python benchmarks/mutants.py                      # every mutant, about 30-40 minutes on 2 cores
  python benchmarks/mutants.py --only=fade_reals_skipped,gs_is_g
"""
import collections
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time

from absl import app, flags

flags.DEFINE_list("only", [], "Names of the mutants to run (default: all).")
flags.DEFINE_string("out", "benchmarks/mutants", "Directory for mutants.md and mutants.json.")
flags.DEFINE_integer("timeout", 900, "Seconds per mutant's test run.")
FLAGS = flags.FLAGS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
Mutant = collections.namedtuple("Mutant", "name file old new tests")

# The module's own tests first, the reference (the longest file) last: pytest -x stops at the first
# failure, so the order changes only how soon a mutant is caught, not whether.
REF = ["tests/test_reference.py"]
LAYERS = ["tests/test_layers.py", "tests/test_networks.py"] + REF
NETWORKS = ["tests/test_networks.py"] + REF
LOSSES = ["tests/test_losses.py"] + REF
# step.py's mutants run TRAINER: test_step.py compares a call of k steps with k single calls, and both sides
# run the same mutated step, so the mutants below cannot fail it; the trainer's runs and the reference can.
TRAINER = ["tests/test_trainer.py"] + REF
CONFIG = ["tests/test_config.py"] + TRAINER
SCHEDULE = ["tests/test_schedule.py", "tests/test_trainer.py"] + REF

MUTANTS = [
    # --- layers.py
    Mutant("wscale_fan_out", "progan_tf/layers.py", "self.kernel_size * self.kernel_size * in_channels,",
           "self.kernel_size * self.kernel_size * self.filters,", LAYERS),
    Mutant("wscale_dense_missing", "progan_tf/layers.py", "_wscale(self.gain, fan_in, self.use_wscale)",
           "_wscale(self.gain, 1, self.use_wscale)", LAYERS),
    Mutant("pixelnorm_wrong_axis", "progan_tf/layers.py",
           "tf.reduce_mean(tf.square(x32), axis=-1, keepdims=True)",
           "tf.reduce_mean(tf.square(x32), axis=1, keepdims=True)", LAYERS),
    Mutant("mbstd_variance_over_pixels", "progan_tf/layers.py", "y = y - tf.reduce_mean(y, axis=1, keepdims=True)",
           "y = y - tf.reduce_mean(y, axis=2, keepdims=True)", LAYERS),
    Mutant("mbstd_variance_not_sqrt", "progan_tf/layers.py",
           "y = tf.sqrt(tf.reduce_mean(tf.square(y), axis=1) + self.epsilon)",
           "y = tf.reduce_mean(tf.square(y), axis=1) + self.epsilon", LAYERS),
    Mutant("fadein_swapped", "progan_tf/layers.py", "return old * (1.0 - alpha) + new * alpha",
           "return old * alpha + new * (1.0 - alpha)", LAYERS),
    Mutant("upsample_gradient_halved", "progan_tf/ops.py", "padding=\"VALID\") * float(factor * factor)",
           "padding=\"VALID\") * float(factor)", LAYERS),
    Mutant("downsample_max_pool", "progan_tf/ops.py",
           "return tf.nn.avg_pool2d(x, ksize=factor, strides=factor, padding=\"VALID\")",
           "return tf.nn.max_pool2d(x, ksize=factor, strides=factor, padding=\"VALID\")", LAYERS),
    Mutant("leaky_gradient_linear", "progan_tf/ops.py", "features=tf.stop_gradient(y), alpha=negative_slope)",
           "features=tf.stop_gradient(y), alpha=1.0)", LAYERS),
    Mutant("fused_upsample_tap", "progan_tf/ops.py", "[[0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]]",
           "[[0, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1]]", LAYERS),
    Mutant("nowscale_keeps_unit_init", "progan_tf/layers.py",
           "return (he_std, 1.0) if use_wscale else (1.0, he_std)",
           "return (he_std, 1.0) if use_wscale else (1.0, 1.0)", LAYERS),
    Mutant("fade_reals_one_minus_alpha", "progan_tf/ops.py", "return low * (1.0 - alpha) + reals * alpha",
           "return low * alpha + reals * (1.0 - alpha)", LAYERS),
    # --- networks.py
    Mutant("g_first_dense_gain", "progan_tf/networks.py", "gain=SQRT2 / 4, target_shape", "gain=SQRT2, target_shape",
           NETWORKS),
    Mutant("torgb_gain", "progan_tf/networks.py", "config.num_channels, 1, gain=1.0,", "config.num_channels, 1,",
           NETWORKS),
    Mutant("d_score_gain", "progan_tf/networks.py", "WeightScaledDense(1, gain=1.0,", "WeightScaledDense(1,",
           NETWORKS),
    Mutant("leaky_slope", "progan_tf/networks.py", "leaky_slope: float = 0.2", "leaky_slope: float = 0.1",
           NETWORKS),
    Mutant("pixelnorm_missing_after_convs", "progan_tf/networks.py",
           "return PixelNorm(name=f\"{name}_norm\")(x) if config.pixelnorm else x", "return x", NETWORKS),
    Mutant("latent_not_normalised", "progan_tf/networks.py",
           "x = PixelNorm(name=\"g_latent_norm\")(latents) if config.normalize_latents else latents",
           "x = latents", NETWORKS),
    Mutant("g_fade_swapped", "progan_tf/networks.py", "FadeIn(name=\"g_fade\")([old, images])",
           "FadeIn(name=\"g_fade\")([images, old])", NETWORKS),
    Mutant("d_fade_old_path_not_downsampled", "progan_tf/networks.py",
           "old = Downsample2D(name=\"d_fade_down\")(images)",
           "old = Downsample2D(name=\"d_fade_down\")(Upsample2D()(images))", NETWORKS),
    Mutant("mbstd_group_ignored", "progan_tf/networks.py", "MinibatchStdDev(config.mbstd_group_size,",
           "MinibatchStdDev(4,", NETWORKS),
    # --- losses.py
    Mutant("drift_on_fakes", "progan_tf/losses.py", "drift * tf.square(real_scores)", "drift * tf.square(fake_scores)",
           LOSSES),
    Mutant("penalty_on_squared_norm", "progan_tf/losses.py",
           "norms = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]))",
           "norms = tf.reduce_sum(tf.square(grads), axis=[1, 2, 3])", LOSSES),
    Mutant("penalty_at_reals", "progan_tf/losses.py", "mixed = reals + (fakes - reals) * tf.cast(mixing, reals.dtype)",
           "mixed = reals", LOSSES),
    Mutant("r1_without_half", "progan_tf/losses.py", "0.5 * r1_gamma * r1", "r1_gamma * r1", LOSSES),
    Mutant("lsgan_g_target_zero", "progan_tf/losses.py", "return 0.5 * tf.square(fake_scores - 1.0)",
           "return 0.5 * tf.square(fake_scores)", LOSSES),
    Mutant("logistic_g_saturating", "progan_tf/losses.py", "return tf.nn.softplus(-fake_scores)",
           "return -tf.nn.softplus(fake_scores)", LOSSES),
    # --- trainer.py
    Mutant("fade_reals_skipped", "progan_tf/training/step.py", "if models.phase.fading:\n        reals = fade_reals",
           "if False:\n        reals = fade_reals", TRAINER),
    Mutant("fade_reals_flipped", "progan_tf/training/step.py", "reals = fade_reals(reals, alpha)",
           "reals = fade_reals(reals, 1.0 - alpha)", TRAINER),
    Mutant("gs_is_g", "progan_tf/training/step.py", "gs_var.assign(g_var + (gs_var - g_var) * beta)",
           "gs_var.assign(g_var)", TRAINER),
    Mutant("gs_grown_from_g", "progan_tf/training/trainer.py", "networks.copy_weights(previous.Gs, Gs)",
           "networks.copy_weights(previous.G, Gs)", TRAINER),
    Mutant("gs_new_layers_not_from_g", "progan_tf/training/trainer.py", "Gs.set_weights(G.get_weights())",
           "networks.initialize_weights(Gs, 99)", TRAINER),
    Mutant("gp_lambda_ignored", "progan_tf/training/step.py", "mixing, config.gp_lambda, config.drift",
           "mixing, 10.0, config.drift", TRAINER),
    Mutant("drift_ignored", "progan_tf/training/step.py", "config.gp_lambda, config.drift,",
           "config.gp_lambda, 0.001,", TRAINER),
    Mutant("beta1_ignored", "progan_tf/training/trainer.py", "beta_1=config.adam_beta1", "beta_1=0.0", TRAINER),
    Mutant("epsilon_ignored", "progan_tf/training/trainer.py", "epsilon=config.adam_epsilon", "epsilon=1e-8",
           TRAINER),
    Mutant("g_step_reuses_d_latents", "progan_tf/training/step.py", "models.D(models.G(z_g, training=True)",
           "models.D(models.G(z_d, training=True)", TRAINER),
    Mutant("one_mixing_weight_per_batch", "progan_tf/training/step.py",
           "mixing = draw(1, [1, 1, 1], tf.random.stateless_uniform)",
           "mixing = draw(1, [1, 1, 1], tf.random.stateless_uniform)[:1]", TRAINER),
    Mutant("draws_not_sliced_per_replica", "progan_tf/training/step.py",
           "first = tf.distribute.get_replica_context().replica_id_in_sync_group * batch", "first = 0", TRAINER),
    Mutant("ema_beta_ignored", "progan_tf/training/config.py", "            return self.g_ema_beta",
           "            return 0.999", CONFIG),
    Mutant("ema_half_life_in_steps", "progan_tf/training/config.py",
           "return 0.5 ** (batch_size / max(half_life, 1e-8))", "return 0.5 ** (1 / max(half_life, 1e-8))", CONFIG),
    Mutant("ema_rampup_ignored", "progan_tf/training/config.py",
           "half_life = min(half_life, images_seen * self.g_ema_rampup)", "pass", CONFIG),
    Mutant("gs_alpha_not_set", "progan_tf/training/step.py", "for model in (models.G, models.D, models.Gs) for layer",
           "for model in (models.G, models.D) for layer", TRAINER),
    Mutant("d_loss_batch_per_replica", "progan_tf/training/step.py",
           "inner_scale, joint),\n            global_batch_size=global_batch)",
           "inner_scale, joint),\n            global_batch_size=batch)", TRAINER),
    # --- adam.py
    Mutant("adam_bias_correction_off_by_one", "progan_tf/training/adam.py", "beta2_power=tf.pow(beta_2, step)",
           "beta2_power=tf.pow(beta_2, step + 1)", REF + ["tests/test_adam.py"]),
    # --- schedule.py
    Mutant("alpha_half_speed", "progan_tf/schedule.py",
           "return min(max((images_seen - self.start) / (self.end - self.start), 0.0), 1.0)",
           "return min(max((images_seen - self.start) / (self.end - self.start) / 2, 0.0), 1.0)", SCHEDULE),
    Mutant("per_resolution_lr_ignored", "progan_tf/schedule.py",
           "return dict(self.learning_rates).get(resolution, self.learning_rate)", "return self.learning_rate",
           SCHEDULE),
    # --- data, export, CLI
    Mutant("mirror_ignored", "progan_tf/data/pipeline.py", "        if mirror:\n", "        if False:\n",
           ["tests/test_data_pipeline.py"] + REF),
    Mutant("export_range", "progan_tf/images.py", "(tf.cast(images, tf.float32) + 1.0) * 0.5",
           "(tf.cast(images, tf.float32) + 1.0) * 0.45", ["tests/test_export.py", "tests/test_trainer.py"]),
    Mutant("export_g_not_gs", "progan_tf/training/trainer.py",
           "path = export.export_generator(\n            models.Gs,",
           "path = export.export_generator(\n            models.G,", TRAINER),
    Mutant("cli_flags_miss_a_field", "progan_tf/cli/common.py",
           "return {f.name: values[f.name].value for f in dataclasses.fields(cls) if f.name not in skip}",
           "return {f.name: values[f.name].value for f in dataclasses.fields(cls)[:-1] if f.name not in skip}", REF),
    Mutant("cli_nombstd_ignored", "progan_tf/cli/options.py",
           '"mbstd_group_size": 0 if f.nombstd else f.mbstd_group_size', '"mbstd_group_size": f.mbstd_group_size', REF),
    Mutant("nogrowing_budget_of_one_phase", "progan_tf/schedule.py",
           "return [Phase(0, last.resolution, False, 0, last.end, last.batch_size, last.learning_rate)]",
           "return [Phase(0, last.resolution, False, 0, last.end - last.start, last.batch_size, last.learning_rate)]",
           SCHEDULE),
]


def checkout(destination):
    """The committed tree (HEAD) unpacked into `destination`: the mutants never see unsaved edits."""
    archive = subprocess.run(["git", "archive", "--format=tar", "HEAD"], cwd=REPO, check=True,
                             capture_output=True).stdout
    with tempfile.TemporaryFile() as f:
        f.write(archive)
        f.seek(0)
        with tarfile.open(fileobj=f) as tar:
            tar.extractall(destination, filter="data")


def run_mutant(mutant, base, timeout):
    """(caught, seconds, last line of pytest's output) for one mutant."""
    with tempfile.TemporaryDirectory(prefix=f"mutant_{mutant.name}_") as tree:
        subprocess.run(["cp", "-a", f"{base}/.", tree], check=True)
        path = os.path.join(tree, mutant.file)
        text = open(path, encoding="utf-8").read()
        if text.count(mutant.old) != 1:
            raise ValueError(f"mutant {mutant.name}: {mutant.old!r} occurs {text.count(mutant.old)} times in "
                             f"{mutant.file}; it must occur once")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text.replace(mutant.old, mutant.new))
        start = time.time()
        env = {**os.environ, "PYTHONPATH": tree, "TF_CPP_MIN_LOG_LEVEL": "3"}
        try:
            proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                                   *mutant.tests], cwd=tree, env=env, capture_output=True, text=True,
                                  timeout=timeout)
            lines = proc.stdout.strip().splitlines()
            failures = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
            caught = proc.returncode != 0
            summary = (failures or lines or [proc.stderr[-200:]])[0 if failures else -1][:160]
        except subprocess.TimeoutExpired:
            caught, summary = False, f"timed out after {timeout} s"
        return caught, time.time() - start, summary


def check_the_copy_is_tested(base):
    """The tests must import the mutated copy, not an installed progan_tf."""
    probe = subprocess.run([sys.executable, "-c", "import progan_tf, os; print(os.path.dirname(progan_tf.__file__))"],
                           cwd=base, env={**os.environ, "PYTHONPATH": base}, capture_output=True, text=True, check=True)
    if not os.path.realpath(probe.stdout.strip()).startswith(os.path.realpath(base)):
        raise RuntimeError(f"tests in the copy import progan_tf from {probe.stdout.strip()}")


def main(argv):
    del argv
    chosen = [m for m in MUTANTS if not FLAGS.only or m.name in FLAGS.only]
    unknown = set(FLAGS.only) - {m.name for m in MUTANTS}
    if unknown:
        sys.exit(f"mutants.py: error: unknown mutants {sorted(unknown)}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="mutants_base_") as base:
        checkout(base)
        check_the_copy_is_tested(base)
        for i, mutant in enumerate(chosen):
            caught, seconds, summary = run_mutant(mutant, base, FLAGS.timeout)
            rows.append({"name": mutant.name, "file": mutant.file, "caught": caught, "seconds": round(seconds, 1),
                         "tests": mutant.tests, "summary": summary})
            print(f"[{i + 1}/{len(chosen)}] {mutant.name:34s} {'caught' if caught else 'SURVIVED'} "
                  f"({seconds:.0f} s): {summary}", flush=True)
    caught = sum(r["caught"] for r in rows)
    os.makedirs(FLAGS.out, exist_ok=True)
    with open(os.path.join(FLAGS.out, "mutants.json"), "w", encoding="utf-8") as f:
        json.dump({"caught": caught, "total": len(rows), "mutants": rows}, f, indent=2)
    with open(os.path.join(FLAGS.out, "mutants.md"), "w", encoding="utf-8") as f:
        f.write(f"# Mutation self-check: {caught} of {len(rows)} caught\n\n"
                "`python benchmarks/mutants.py` (each mutant: its module's tests, `pytest -x`)\n\n"
                "| mutant | file | caught | s | first failure / summary |\n|---|---|---|---|---|\n")
        for r in rows:
            f.write(f"| {r['name']} | {r['file']} | {'yes' if r['caught'] else '**no**'} | {r['seconds']:.0f} | "
                    f"{r['summary'].replace('|', '/')} |\n")
    print(f"{caught} of {len(rows)} mutants caught; table in {os.path.join(FLAGS.out, 'mutants.md')}")
    sys.exit(0 if caught == len(rows) else 1)


if __name__ == "__main__":
    app.run(main)
