"""The progressive training loop under one tf.distribute strategy.

The loop is a handful of named steps: build a phase's models (growing the previous
phase's weights into them), make fresh optimisers, run the distributed train step,
and do the per-tick maintenance (progress, samples, checkpoints). Every random
number of a step is drawn statelessly from (seed, step) for the global batch and
sliced per replica, so a step is the same computation on 1 replica or on N, and a
resumed run replays exactly what an uninterrupted one would have done (bit for bit
after `make_deterministic()`).
"""
import dataclasses
import json
import os
import signal
import threading
import time

import keras
import numpy as np
import tensorflow as tf

from progan_tf import export, losses, networks
from progan_tf.layers import fade_reals
from progan_tf.metrics import evaluate
from progan_tf.schedule import Schedule
from progan_tf.training import checkpoint as ckpt
from progan_tf.training.adam import FusedAdam
from progan_tf.training.snapshots import RunLog, progress_line

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything about a run that is not the network or the schedule.

    Attributes:
      run_dir: where checkpoints, samples, logs and the final export go.
      loss: one of losses.LOSSES ("wgan_gp" in the paper).
      gp_lambda: WGAN-GP penalty weight (10).
      drift: epsilon_drift, weight of D(real)^2 (0.001).
      r1_gamma: R1 weight for the logistic loss (10).
      adam_beta1, adam_beta2, adam_epsilon: Adam hyper-parameters (0, 0.99, 1e-8).
      g_ema_beta: decay of the generator average Gs per step (0.999); 0 samples G itself (no average).
      g_ema_kimg: if > 0, the average's half-life in thousands of images instead of g_ema_beta:
        beta = 0.5 ** (batch / (1000 * g_ema_kimg)), the same averaging window at any batch size.
      g_ema_rampup: if > 0 (with g_ema_kimg), the half-life is at most rampup * images seen, so the
        first images are not averaged over a window longer than the run so far (StyleGAN2's 0.05).
      mirror: random left-right flips of the reals.
      seed: seeds latents, penalties' interpolation factors and data order.
      tick_kimg: thousands of images between progress lines and sample grids.
      checkpoint_kimg: thousands of images between checkpoints.
      keep_checkpoints: checkpoints kept on disk (>= 2).
      precision: "float32", "mixed_float16" (loss-scaled) or "mixed_bfloat16".
      jit_compile: XLA-compile the step (single replica only; slower on CPU).
      grid_size: number of fixed-latent samples in each grid.
      metrics: metrics evaluated on Gs during training, e.g. ("swd",) (see progan_tf.metrics).
      metrics_every_kimg: thousands of images between evaluations (0 = never).
      metrics_num_images: generated and real images per evaluation (16 384 in the paper).
      steps_per_call: training steps per call of the compiled step function; > 1 saves the
        per-call Python and dispatch cost (most of a step at 4x4 on a CPU). Ticks and
        checkpoints still fall after the same steps, so results do not depend on it.
    """
    run_dir: str
    loss: str = "wgan_gp"
    gp_lambda: float = 10.0
    drift: float = 0.001
    r1_gamma: float = 10.0
    adam_beta1: float = 0.0
    adam_beta2: float = 0.99
    adam_epsilon: float = 1e-8
    g_ema_beta: float = 0.999
    g_ema_kimg: float = 0.0
    g_ema_rampup: float = 0.0
    mirror: bool = False
    seed: int = 0
    tick_kimg: float = 160
    checkpoint_kimg: float = 1000
    keep_checkpoints: int = 3
    precision: str = "float32"
    jit_compile: bool = False
    grid_size: int = 64
    metrics: tuple = ()
    metrics_every_kimg: float = 0
    metrics_num_images: int = 10000
    steps_per_call: int = 8

    def ema_beta(self, batch_size, images_seen):
        """The decay of Gs for a step of `batch_size` images taken at `images_seen`."""
        if not self.g_ema_kimg:
            return self.g_ema_beta
        half_life = self.g_ema_kimg * 1000
        if self.g_ema_rampup:
            half_life = min(half_life, images_seen * self.g_ema_rampup)
        return 0.5 ** (batch_size / max(half_life, 1e-8))


def make_strategy(devices=None):
    """MultiWorkerMirroredStrategy when TF_CONFIG names several workers, else MirroredStrategy.

    Args:
      devices: device names for MirroredStrategy; None means every visible GPU (or the CPU).
    """
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    if sum(len(v) for k, v in cluster.items() if k in ("chief", "worker")) > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.MirroredStrategy(devices or None)


def make_deterministic():
    """Make reruns and resumes bit-exact: TensorFlow op determinism, and one op at a time.

    Op determinism alone is not enough on x86: TensorFlow's oneDNN kernels occasionally
    compute a different result when other ops run beside them (a 4x4 stage, 40 steps:
    about one process in four ended with different weights, none with one inter-op
    thread). One inter-op thread costs about 20 % per step (benchmarks/RESULTS.md).
    Call it before TensorFlow runs anything.

    Raises:
      RuntimeError: TensorFlow is already initialised.
    """
    tf.config.experimental.enable_op_determinism()
    tf.config.threading.set_inter_op_parallelism_threads(1)


def validate(network, schedule, config, num_replicas, source=None):
    """Reject inconsistent options before any heavy work, naming the option to change.

    Raises:
      ValueError: with a one-line message.
    """
    if config.loss not in losses.LOSSES:
        raise ValueError(f"--loss={config.loss!r} is unknown; choose one of {', '.join(losses.LOSSES)}")
    if config.precision not in PRECISIONS:
        raise ValueError(f"--precision={config.precision!r} is unknown; choose one of {', '.join(PRECISIONS)}")
    if schedule.max_resolution != network.resolution:
        raise ValueError(f"schedule ends at {schedule.max_resolution} but the network is {network.resolution}")
    if config.metrics:
        if "fid" in config.metrics:
            raise ValueError("--metrics: FID needs Inception weights; evaluate it with progan-eval after training")
        try:
            evaluate.validate_metrics(config.metrics)
        except ValueError as e:
            raise ValueError(f"--metrics: {e}") from None
    if not isinstance(config.steps_per_call, int) or config.steps_per_call < 1:
        raise ValueError(f"--steps_per_call must be a positive integer, got {config.steps_per_call!r}")
    if config.jit_compile and num_replicas > 1:
        raise ValueError("--xla compiles single-replica steps only; drop --xla or use one device")
    if not 0.0 <= config.g_ema_beta < 1.0:
        raise ValueError(f"--g_ema_beta must be in [0, 1), got {config.g_ema_beta}")
    if config.g_ema_kimg < 0 or config.g_ema_rampup < 0:
        raise ValueError("--g_ema_kimg and --g_ema_rampup must be >= 0")
    group = network.mbstd_group_size
    for res in schedule.resolutions:
        batch = schedule.batch_size(res)
        if batch % num_replicas:
            raise ValueError(f"batch size {batch} at {res}x{res} is not divisible by the {num_replicas} "
                             f"replicas; change --batch_sizes or --devices")
        per_replica = batch // num_replicas
        if group and per_replica > group and per_replica % group:
            raise ValueError(f"per-replica batch {per_replica} at {res}x{res} is not divisible by "
                             f"--mbstd_group_size={group}; change --batch_sizes or --mbstd_group_size")
    if source is not None:
        if source.num_channels != network.num_channels:
            raise ValueError(f"the data has {source.num_channels} channels but --num_channels="
                             f"{network.num_channels}; make them match")
        if source.max_resolution < network.resolution:
            raise ValueError(f"the data's largest resolution is {source.max_resolution}, below --resolution="
                             f"{network.resolution}; lower --resolution or prepare larger images")


@dataclasses.dataclass
class PhaseModels:
    """The models and optimisers of one phase (rebuilt, with fresh optimisers, at every phase)."""
    phase: object
    G: keras.Model
    D: keras.Model
    Gs: keras.Model
    g_opt: keras.optimizers.Optimizer
    d_opt: keras.optimizers.Optimizer

    def checkpoint(self):
        return ckpt.make_checkpoint({"G": self.G, "D": self.D, "Gs": self.Gs},
                                    {"g_opt": self.g_opt, "d_opt": self.d_opt})


def joint_d_pass(network, per_replica_batch):
    """Whether D can score reals and fakes in one pass over [reals; fakes] (`losses._scores_pair`).

    D mixes samples only in minibatch-stddev groups of min(group size, batch) consecutive
    samples. With at least a group's worth of samples per replica (a multiple of it, by
    `validate`), the groups of the joint batch lie within the reals or the fakes, as in
    separate passes; with fewer, a joint group would span both.
    """
    group = network.mbstd_group_size
    return not group or per_replica_batch >= group


class Trainer:
    """Trains a progressive GAN from its first phase (or its newest checkpoint) to the end.

    Args:
      network: NetworkConfig.
      schedule: Schedule.
      config: TrainConfig.
      source: an image source (see progan_tf.data.pipeline).
      strategy: a tf.distribute strategy; default `make_strategy()`.
      print_fn: where progress lines go.
      on_tick: optional fn(models, images_seen) called on the chief after each tick's own
        maintenance, e.g. an evaluation of models.Gs on held-out images.
    """

    def __init__(self, network, schedule, config, source, strategy=None, print_fn=print, on_tick=None):
        self.strategy = strategy or make_strategy()
        validate(network, schedule, config, self.strategy.num_replicas_in_sync, source)
        self.network, self.schedule, self.config, self.source = network, schedule, config, source
        self.print = print_fn
        self.on_tick = on_tick
        resolver = getattr(self.strategy, "cluster_resolver", None)
        task_type, task_id = (resolver.task_type, resolver.task_id) if resolver else (None, 0)
        self.is_chief = task_type in (None, "chief") or (task_type == "worker" and task_id == 0)
        self.checkpointer = ckpt.RunCheckpointer(config.run_dir, config.keep_checkpoints, self.is_chief, task_id)
        self.log = RunLog(config.run_dir, enabled=self.is_chief)
        self.grid_latents = np.random.RandomState(config.seed).randn(
            config.grid_size, network.latent_size).astype(np.float32)
        self._stop_requested = False

    # ---- run options ------------------------------------------------------------------------

    def _options(self):
        return {"network": self.network.to_dict(), "schedule": dataclasses.asdict(self.schedule),
                "train": dataclasses.asdict(self.config), "num_replicas": self.strategy.num_replicas_in_sync}

    def _check_or_write_options(self):
        """Write the resolved options as config.json, or check a resumed run still matches them."""
        path = os.path.join(self.config.run_dir, ckpt.CONFIG_FILE)
        options = json.loads(json.dumps(self._options()))  # tuples -> lists, as stored
        if ckpt.read_state(self.config.run_dir) is not None and os.path.exists(path):
            saved = ckpt.read_json(path)
            saved["network"] = networks.NetworkConfig.from_dict(saved["network"]).to_dict()
            changed = [k for k in saved["network"] if saved["network"][k] != options["network"].get(k)]
            changed += [k for k in ("loss", "seed") if saved["train"][k] != options["train"][k]]
            changed += [k for k in saved["schedule"] if k != "total_kimg"
                        and saved["schedule"][k] != options["schedule"][k]]
            if changed:
                raise ValueError(f"{self.config.run_dir} holds a run started with different {', '.join(changed)}; "
                                 f"resume with the same flags or choose a new --run_dir")
        if self.is_chief:
            ckpt.write_json_atomic(path, options)

    # ---- phases -----------------------------------------------------------------------------

    def _make_optimizer(self, learning_rate):
        c = self.config
        opt = FusedAdam(learning_rate, beta_1=c.adam_beta1, beta_2=c.adam_beta2, epsilon=c.adam_epsilon)
        return keras.optimizers.LossScaleOptimizer(opt) if c.precision == "mixed_float16" else opt

    def build_phase(self, phase, previous=None):
        """Build G, D, Gs and fresh optimisers for `phase`, growing `previous`'s weights into them."""
        with self.strategy.scope():
            G = networks.build_generator(self.network, phase.resolution, phase.fading)
            D = networks.build_discriminator(self.network, phase.resolution, phase.fading)
            Gs = networks.build_generator(self.network, phase.resolution, phase.fading)
            networks.initialize_weights(G, self.config.seed * 2)
            networks.initialize_weights(D, self.config.seed * 2 + 1)
            if previous is None:
                Gs.set_weights(G.get_weights())
            else:
                networks.grow_weights(previous.G, G)
                networks.grow_weights(previous.D, D)
                grown = set(networks.grow_weights(previous.Gs, Gs))
                # Layers new in this phase start in Gs as they start in G.
                for layer in Gs.layers:
                    if layer.weights and layer.name not in grown:
                        layer.set_weights(G.get_layer(layer.name).get_weights())
            g_opt = self._make_optimizer(phase.learning_rate)
            d_opt = self._make_optimizer(phase.learning_rate)
            g_opt.build(G.trainable_variables)
            d_opt.build(D.trainable_variables)
        return PhaseModels(phase, G, D, Gs, g_opt, d_opt)

    def dataset_iterator(self, phase, phase_step):
        """The distributed iterator of `phase`'s real images, starting after `phase_step` global batches.

        Each replica gets its own per-replica batch; the global batch of a step is the
        replicas' batches in replica order (what `make_train_step` slices the draws by).
        """
        per_replica = phase.batch_size // self.strategy.num_replicas_in_sync

        def dataset_fn(input_context):
            return self.source.dataset(phase.resolution, per_replica, input_context, mirror=self.config.mirror,
                                       seed=self.config.seed * 1000 + phase.index, skip_batches=phase_step)

        return iter(self.strategy.distribute_datasets_from_function(dataset_fn))

    # ---- the step ---------------------------------------------------------------------------

    def _replica_step(self, m, reals, step, alpha):
        """One D step and one G step on this replica's slice of the global batch."""
        c, global_batch = self.config, m.phase.batch_size
        ctx = tf.distribute.get_replica_context()
        batch = tf.shape(reals)[0]
        first = ctx.replica_id_in_sync_group * batch

        def draw(stream, shape, fn):
            seed = tf.stack([tf.constant(c.seed * 8 + stream, tf.int64), tf.cast(step, tf.int64)])
            return tf.slice(fn([global_batch, *shape], seed=seed), [first] + [0] * len(shape), [batch, *shape])

        if m.phase.fading:
            reals = fade_reals(reals, alpha)
        z_d = draw(0, [self.network.latent_size], tf.random.stateless_normal)  # [B, latent]
        mixing = draw(1, [1, 1, 1], tf.random.stateless_uniform)  # [B, 1, 1, 1]
        z_g = draw(2, [self.network.latent_size], tf.random.stateless_normal)
        scaled = isinstance(m.d_opt, keras.optimizers.LossScaleOptimizer)

        fakes = m.G(z_d, training=True)
        joint = joint_d_pass(self.network, global_batch // self.strategy.num_replicas_in_sync)
        with tf.GradientTape() as tape:
            inner_scale = tf.cast(m.d_opt.dynamic_scale, tf.float32) if scaled else None
            d_loss = tf.nn.compute_average_loss(
                losses.d_loss(c.loss, m.D, reals, fakes, mixing, c.gp_lambda, c.drift, c.r1_gamma, inner_scale,
                              joint),
                global_batch_size=global_batch)
            d_objective = m.d_opt.scale_loss(d_loss) if scaled else d_loss
        m.d_opt.apply_gradients(zip(tape.gradient(d_objective, m.D.trainable_variables), m.D.trainable_variables))

        with tf.GradientTape() as tape:
            scores = tf.reshape(tf.cast(m.D(m.G(z_g, training=True), training=True), tf.float32), [-1])
            g_loss = tf.nn.compute_average_loss(losses.g_loss(c.loss, scores), global_batch_size=global_batch)
            g_objective = m.g_opt.scale_loss(g_loss) if scaled else g_loss
        m.g_opt.apply_gradients(zip(tape.gradient(g_objective, m.G.trainable_variables), m.G.trainable_variables))
        return d_loss, g_loss

    def make_train_step(self, m, steps_per_call=None):
        """The compiled, distributed step: set alpha, train D and G on every replica, update Gs.

        Args:
          m: PhaseModels.
          steps_per_call: None for a function of one step on given images,
              fn(reals per replica, step int64, alpha float32, beta float32) -> (d_loss, g_loss);
            or k for a function of up to k steps on batches taken from a distributed iterator,
              fn(iterator, first_step int64, alphas float32 [k], betas float32 [k], count int32)
                -> (d_losses [k], g_losses [k]),
            running steps first_step .. first_step + count - 1 at alphas[:count] with Gs decays
            betas[:count] (later losses are 0).
        """
        fades = [layer.alpha for model in (m.G, m.D, m.Gs) for layer in networks.fade_layers(model)]

        def train_step(reals, step, alpha, beta):
            for variable in fades:
                variable.assign(alpha)
            d_loss, g_loss = self.strategy.run(self._replica_step, args=(m, reals, step, alpha))
            for gs_var, g_var in zip(m.Gs.trainable_variables, m.G.trainable_variables):
                gs_var.assign(g_var + (gs_var - g_var) * beta)
            total = tf.distribute.ReduceOp.SUM
            return self.strategy.reduce(total, d_loss, None), self.strategy.reduce(total, g_loss, None)

        step_fn = tf.function(train_step, jit_compile=self.config.jit_compile or None)
        if steps_per_call is None:
            return step_fn

        def train_steps(data, first_step, alphas, betas, count):
            d_losses = g_losses = tf.zeros([steps_per_call])  # [k]
            for i in tf.range(count):
                d_loss, g_loss = step_fn(next(data), first_step + tf.cast(i, tf.int64), alphas[i], betas[i])
                d_losses = tf.tensor_scatter_nd_update(d_losses, [[i]], [d_loss])
                g_losses = tf.tensor_scatter_nd_update(g_losses, [[i]], [g_loss])
            return d_losses, g_losses

        return tf.function(train_steps)

    # ---- maintenance ------------------------------------------------------------------------

    def _state(self, phase, images_seen, step, phase_step):
        return {"images_seen": images_seen, "step": step, "phase_step": phase_step, "phase_index": phase.index,
                "resolution": phase.resolution, "phase": phase.name, "alpha": phase.alpha(images_seen),
                "time": time.time()}

    def _save(self, m, images_seen, step, phase_step):
        path = self.checkpointer.save(m.checkpoint(), self._state(m.phase, images_seen, step, phase_step))
        self.print(f"checkpoint {os.path.basename(path)} at kimg {images_seen / 1000:.1f}")

    def _sample_grid(self, m, images_seen):
        chunks = [m.Gs(self.grid_latents[i:i + 16], training=False).numpy()
                  for i in range(0, len(self.grid_latents), 16)]
        return self.log.grid(images_seen, f"fakes_{images_seen:010d}", np.concatenate(chunks))

    def _tick(self, m, images_seen, losses_since, timing):
        """Progress line, scalars and a Gs grid for the images since the last tick."""
        d_loss = float(tf.reduce_mean(tf.concat([d for d, _ in losses_since], 0)))
        g_loss = float(tf.reduce_mean(tf.concat([g for _, g in losses_since], 0)))
        now = time.time()
        rate = (images_seen - timing["images"]) / max(now - timing["time"], 1e-9)
        total = self.schedule.total_images
        alpha = m.phase.alpha(images_seen)
        self.print(progress_line(images_seen, total, m.phase, alpha, rate, d_loss, g_loss,
                                 (total - images_seen) / max(rate, 1e-9)))
        self.log.scalars(images_seen, {
            "kimg": images_seen / 1000, "resolution": m.phase.resolution, "alpha": alpha,
            "phase": m.phase.name, "images_per_second": rate, "loss/D": d_loss, "loss/G": g_loss,
            "learning_rate": m.phase.learning_rate, "batch_size": m.phase.batch_size})
        self._sample_grid(m, images_seen)
        every = int(self.config.metrics_every_kimg * 1000)
        if self.config.metrics and every and images_seen // every > timing["images"] // every:
            self._evaluate(m, images_seen)
        if self.on_tick is not None and self.is_chief:
            self.on_tick(m, images_seen)
        self.log.flush()
        timing.update(images=images_seen, time=time.time())

    def _evaluate(self, m, images_seen):
        """Score Gs at the current resolution, log it, and keep the best stable-phase Gs per resolution."""
        if not self.is_chief:
            return
        c, res = self.config, m.phase.resolution
        result = evaluate.evaluate_generator(
            lambda z: m.Gs(z, training=False), evaluate.real_batches(self.source, res, 64, seed=c.seed),
            c.metrics, min(c.metrics_num_images, self.source.num_images), res, self.network.latent_size,
            self.network.num_channels, seed=c.seed, cache_dir=os.path.join(c.run_dir, "metrics_cache"))
        self.print(evaluate.format_table(result))
        self.log.scalars(images_seen, {"kimg": images_seen / 1000, "resolution": res,
                                       **{f"metrics/{k}": v for k, v in result.items()}})
        score = result.get("SWDx1e3_avg")
        best_dir = os.path.join(c.run_dir, f"best_{res}")
        best = export.read_metadata(best_dir).get("SWDx1e3_avg") if os.path.isdir(best_dir) else None
        if score is not None and not m.phase.fading and (best is None or score < best):
            export.export_generator(m.Gs, self.network, best_dir,
                                    {"images_seen": images_seen, "SWDx1e3_avg": score}, overwrite=True)
            self.print(f"best Gs at {res}x{res} so far (SWD x1e3 {score:.2f}) saved to {best_dir}")

    def _request_stop(self, signum, frame):
        self.print(f"signal {signum}: stopping after this step and saving a checkpoint")
        self._stop_requested = True

    # ---- the loop ---------------------------------------------------------------------------

    def _start(self):
        """Models, counters and data for a new run or the newest checkpoint."""
        self._check_or_write_options()
        state = ckpt.read_state(self.config.run_dir)
        if state is None:
            phase = self.schedule.phases()[0]
            m = self.build_phase(phase)
            if self.is_chief:
                reals = next(iter(self.source.dataset(self.schedule.max_resolution, self.config.grid_size)))
                self.log.grid(0, "reals", reals.numpy())
            return m, 0, 0, 0
        phase = self.schedule.phases()[state["phase_index"]]
        m = self.build_phase(phase)
        path = self.checkpointer.restore(m.checkpoint(), state)
        self.print(f"resumed from {path}: {phase.resolution}x{phase.resolution} {phase.name}, "
                   f"kimg {state['images_seen'] / 1000:.1f}, alpha {phase.alpha(state['images_seen']):.3f}")
        return m, state["images_seen"], state["step"], state["phase_step"]

    def train(self, stop_at_images=None):
        """Train to the end of the schedule (or until `stop_at_images`), checkpointing on the way.

        Returns:
          The final run state dict (images_seen, step, phase, resolution, alpha ...).
        """
        m, images_seen, step, phase_step = self._start()
        end = self.schedule.total_images if stop_at_images is None else min(stop_at_images, self.schedule.total_images)
        # Ctrl-C and SIGTERM finish the current step and save, so no work is lost.
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            handlers = {sig: signal.signal(sig, self._request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._loop(m, images_seen, step, phase_step, end)
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        return self.result

    def _loop(self, m, images_seen, step, phase_step, end):
        c, k = self.config, self.config.steps_per_call
        train_steps, data = self.make_train_step(m, k), self.dataset_iterator(m.phase, phase_step)
        timing, pending = {"images": images_seen, "time": time.time()}, []
        next_tick = images_seen + c.tick_kimg * 1000
        next_checkpoint = images_seen + c.checkpoint_kimg * 1000
        while images_seen < end and not self._stop_requested:
            phase = self.schedule.phase_at(images_seen)
            if phase.index != m.phase.index:
                m, phase_step = self.build_phase(phase, previous=m), 0
                train_steps, data = self.make_train_step(m, k), self.dataset_iterator(phase, 0)
                self.print(f"phase {phase.index}: {phase.resolution}x{phase.resolution} {phase.name}, "
                           f"batch {phase.batch_size}, lr {phase.learning_rate:g}")
            # Up to k steps, ending with the step that reaches the next tick, checkpoint or phase end, so
            # those fall after the same steps whatever k is.
            stop = min(next_tick, next_checkpoint, phase.end, end)
            count = min(k, -int((images_seen - stop) // phase.batch_size))  # ceil of the steps to `stop`
            seen = [images_seen + i * phase.batch_size for i in range(count)]
            alphas = [phase.alpha(n) for n in seen] + [0.0] * (k - count)
            betas = [c.ema_beta(phase.batch_size, n) for n in seen] + [0.0] * (k - count)
            d_losses, g_losses = train_steps(data, tf.constant(step, tf.int64), tf.constant(alphas, tf.float32),
                                             tf.constant(betas, tf.float32), tf.constant(count, tf.int32))
            # Losses stay on the device until the tick, so the host never waits for a call to finish.
            pending.append((d_losses[:count], g_losses[:count]))
            images_seen, step, phase_step = (images_seen + count * phase.batch_size, step + count,
                                             phase_step + count)
            if images_seen >= next_tick or images_seen >= end:
                self._tick(m, images_seen, pending, timing)
                pending, next_tick = [], images_seen + c.tick_kimg * 1000
            if images_seen >= next_checkpoint:
                self._save(m, images_seen, step, phase_step)
                next_checkpoint = images_seen + c.checkpoint_kimg * 1000
        self._save(m, images_seen, step, phase_step)
        self.models = m
        self.result = self._state(m.phase, images_seen, step, phase_step)
        if images_seen >= self.schedule.total_images and self.is_chief:
            self._export_final(m, images_seen)

    def _export_final(self, m, images_seen):
        """Write the finished Gs to runs/<name>/final/ (SavedModel + generator.keras)."""
        path = export.export_generator(
            m.Gs, self.network, os.path.join(self.config.run_dir, "final"),
            {"images_seen": images_seen, "run_dir": os.path.abspath(self.config.run_dir)}, overwrite=True)
        self.print(f"exported Gs to {path}")
