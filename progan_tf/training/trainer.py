"""The progressive training loop under one tf.distribute strategy.

The loop is a handful of named steps: build a phase's models (growing the previous phase's weights into them), make
fresh optimisers, run the distributed train step (training/step.py), and do the per-tick maintenance (progress,
samples, checkpoints). A resumed run replays exactly what an uninterrupted one would have done (bit for bit after
`make_deterministic()`).
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

from progan_tf import export, networks, runs
from progan_tf.data.pipeline import drop_in_background
from progan_tf.errors import RunError
from progan_tf.metrics import evaluate
from progan_tf.training import checkpoint as ckpt
from progan_tf.training import progress
from progan_tf.training.adam import FusedAdam
from progan_tf.training.distribute import make_strategy
from progan_tf.training.config import check_resume, validate
from progan_tf.training.snapshots import RunLog, progress_line
from progan_tf.training.step import NonFinite, check_finite, make_train_step


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


@dataclasses.dataclass
class Position:
    """Where a run is: images seen, steps taken in all and in the current phase."""
    images_seen: int = 0
    step: int = 0
    phase_step: int = 0


class Trainer:
    """Trains a progressive GAN from its first phase (or its newest checkpoint) to the end.

    `network`, `schedule`, `config`: NetworkConfig, Schedule, TrainConfig. `dataset`: the training images
    (progan_tf.data.pipeline: ArrayDataset, PreparedDataset). `strategy`: default `make_strategy()`. `on_tick`: optional
    fn(models, images_seen) called on the chief after each tick's own maintenance, e.g. an evaluation of models.Gs on
    held-out images.
    """

    def __init__(self, network, schedule, config, dataset, strategy=None, print_fn=print, on_tick=None):
        self.strategy = strategy or make_strategy()
        validate(network, schedule, config, self.strategy.num_replicas_in_sync, dataset)
        self.network, self.schedule, self.config, self.dataset = network, schedule, config, dataset
        self.print, self.on_tick = print_fn, on_tick
        resolver = getattr(self.strategy, "cluster_resolver", None)
        task_type, task_id = (resolver.task_type, resolver.task_id) if resolver else (None, 0)
        self.is_chief = task_type in (None, "chief") or (task_type == "worker" and task_id == 0)
        self.checkpointer = ckpt.RunCheckpointer(config.run_dir, config.keep_checkpoints, self.is_chief, task_id)
        self.log = RunLog(config.run_dir, enabled=self.is_chief)
        self.grid_latents = np.random.RandomState(config.seed).randn(
            config.grid_size, network.latent_size).astype(np.float32)
        self.stop_requested = False
        self.saved_step = None  # the step of the newest checkpoint this Trainer wrote

    # ---- run options ------------------------------------------------------------------------

    def options(self):
        """The resolved options as config.json stores them, with what identifies the data."""
        options = {"network": self.network.to_dict(), "schedule": dataclasses.asdict(self.schedule),
                   "train": dataclasses.asdict(self.config), "num_replicas": self.strategy.num_replicas_in_sync,
                   "data": self.dataset.identity() if hasattr(self.dataset, "identity") else None}
        return json.loads(json.dumps(options))  # tuples -> lists, as stored

    def _check_options(self, options):
        """A resumed run must be the run config.json describes (read only: nothing is written here)."""
        path = os.path.join(self.config.run_dir, runs.CONFIG_FILE)
        try:
            saved = runs.read_json(path)
        except (OSError, ValueError) as e:
            raise RunError(f"{path} cannot be read ({e}); it records the run's options, so the checkpoints cannot "
                           f"be resumed safely without it: restore it, or start in another run directory") from None
        check_resume(saved, options, self.config.run_dir, self.config.allow_data_change)

    # ---- phases -----------------------------------------------------------------------------

    def _make_optimizer(self, learning_rate):
        config = self.config
        opt = FusedAdam(learning_rate, beta_1=config.adam_beta1, beta_2=config.adam_beta2,
                        epsilon=config.adam_epsilon)
        return keras.optimizers.LossScaleOptimizer(opt) if config.precision == "mixed_float16" else opt

    def build_phase(self, phase, previous=None):
        """Build G, D, Gs and fresh optimisers for `phase`, growing `previous`'s weights into them."""
        with self.strategy.scope():
            G = networks.build_generator(self.network, phase.resolution, phase.fading)
            D = networks.build_discriminator(self.network, phase.resolution, phase.fading)
            Gs = networks.build_generator(self.network, phase.resolution, phase.fading)
            networks.initialize_weights(G, self.config.seed * 2)
            networks.initialize_weights(D, self.config.seed * 2 + 1)
            Gs.set_weights(G.get_weights())  # layers new in this phase start in Gs as they start in G
            if previous is not None:
                networks.copy_weights(previous.G, G)
                networks.copy_weights(previous.D, D)
                networks.copy_weights(previous.Gs, Gs)
            g_opt = self._make_optimizer(phase.learning_rate)
            d_opt = self._make_optimizer(phase.learning_rate)
            g_opt.build(G.trainable_variables)
            d_opt.build(D.trainable_variables)
        return PhaseModels(phase, G, D, Gs, g_opt, d_opt)

    def dataset_iterator(self, phase, phase_step):
        """The distributed iterator of `phase`'s real images, starting after `phase_step` global batches.

        A step's global batch is the replicas' per-replica batches in replica order (as the step slices its draws).
        """
        replicas = self.strategy.num_replicas_in_sync
        per_replica = phase.batch_size // replicas

        def dataset_fn(input_context):
            # A pipeline feeds replicas / pipelines replicas a per-replica batch each per step.
            skip = phase_step * (replicas // input_context.num_input_pipelines)
            return self.dataset.batches(phase.resolution, per_replica, input_context, mirror=self.config.mirror,
                                        seed=self.config.seed * 1000 + phase.index, skip_batches=skip)

        return iter(self.strategy.distribute_datasets_from_function(dataset_fn))

    def make_train_step(self, models, steps_per_call=None):
        """The compiled, distributed step of `models` (see training.step.make_train_step)."""
        return make_train_step(self.strategy, models, self.network, self.config, steps_per_call)

    # ---- maintenance ------------------------------------------------------------------------

    def state(self, phase, position):
        """The run state that state.json stores beside a checkpoint."""
        return {"images_seen": position.images_seen, "step": position.step, "phase_step": position.phase_step,
                "phase_index": phase.index, "resolution": phase.resolution, "fading": phase.fading,
                "phase": phase.name, "alpha": phase.alpha(position.images_seen), "time": time.time()}

    def _save(self, models, position):
        check_finite(models)  # a checkpoint is never written from non-finite weights
        path = self.checkpointer.save(models.checkpoint(), self.state(models.phase, position))
        self.saved_step = position.step
        self.print(f"checkpoint {os.path.basename(path)} at kimg {position.images_seen / 1000:.1f}")

    def _sample_grid(self, models, images_seen):
        chunks = [models.Gs(self.grid_latents[i:i + 16], training=False).numpy()
                  for i in range(0, len(self.grid_latents), 16)]
        return self.log.grid(images_seen, f"fakes_{images_seen:010d}", np.concatenate(chunks))

    def _measure_steps(self, models, pending, timing):
        """Wait for the steps since the last measurement and tell the ETA model what they took."""
        if pending:
            pending[-1][0].numpy()
        now = time.time()
        self.eta.steps(models.phase, timing["steps"], now - timing["mark"])
        timing.update(mark=now, steps=0)
        return now

    def _tick(self, models, images_seen, losses_since, timing):
        """Progress line, scalars and a Gs grid for the images since the last tick."""
        d_loss = float(tf.reduce_mean(tf.concat([d for d, _ in losses_since], 0)))
        g_loss = float(tf.reduce_mean(tf.concat([g for _, g in losses_since], 0)))
        began = self._measure_steps(models, losses_since, timing)
        if not (np.isfinite(d_loss) and np.isfinite(g_loss)):
            raise NonFinite(f"non-finite losses (D {d_loss}, G {g_loss})")
        check_finite(models)
        rate = (images_seen - timing["images"]) / max(time.time() - timing["time"], 1e-9)
        phase, total = models.phase, self.schedule.total_images
        alpha = phase.alpha(images_seen)
        self.print(progress_line(images_seen, total, phase, alpha, rate, d_loss, g_loss, self._eta(images_seen)))
        self.log.scalars(images_seen, {
            "kimg": images_seen / 1000, "resolution": phase.resolution, "alpha": alpha, "phase": phase.name,
            "images_per_second": rate, "loss/D": d_loss, "loss/G": g_loss, "learning_rate": phase.learning_rate,
            "batch_size": phase.batch_size})
        self._sample_grid(models, images_seen)
        every = int(self.config.metrics_every_kimg * 1000)
        if self.config.metrics and every and images_seen // every > timing["images"] // every:
            self._evaluate(models, images_seen)
        if self.on_tick is not None and self.is_chief:
            self.on_tick(models, images_seen)
        self.log.flush()
        done = time.time()
        self.eta.cost("tick", done - began)
        timing.update(images=images_seen, time=done, mark=done)

    def _eta(self, images_seen):
        config = self.config
        return self.eta.remaining(images_seen, config.tick_kimg * 1000, config.checkpoint_kimg * 1000)

    def _evaluate(self, models, images_seen):
        """Score Gs at the current resolution, log it, and keep the best stable-phase Gs per resolution."""
        if not self.is_chief:
            return
        config, res = self.config, models.phase.resolution
        result = evaluate.evaluate_generator(
            lambda z: models.Gs(z, training=False), evaluate.real_batches(self.dataset, res, 64, seed=config.seed),
            config.metrics, min(config.metrics_num_images, self.dataset.num_images), res, self.network.latent_size,
            self.network.num_channels, seed=config.seed, cache_dir=os.path.join(config.run_dir, "metrics_cache"))
        self.print(evaluate.format_table(result))
        self.log.scalars(images_seen, {"kimg": images_seen / 1000, "resolution": res,
                                       **{f"metrics/{k}": v for k, v in result.items()}})
        score = result.get("SWDx1e3_avg")
        best_dir = os.path.join(config.run_dir, f"best_{res}")
        best = export.read_metadata(best_dir).get("SWDx1e3_avg") if os.path.isdir(best_dir) else None
        if score is not None and not models.phase.fading and (best is None or score < best):
            export.export_generator(models.Gs, self.network, best_dir,
                                    {"images_seen": images_seen, "SWDx1e3_avg": score}, overwrite=True)
            self.print(f"best Gs at {res}x{res} so far (SWD x1e3 {score:.2f}) saved to {best_dir}")

    def _request_stop(self, signum, frame):
        if self.stop_requested:  # a second Ctrl-C: the newest complete checkpoint stays the one state.json names
            self.print("stopping at once; the run resumes from its newest complete checkpoint")
            os._exit(128 + signum)
        self.print("stopping after this call of the step; saving a checkpoint (Ctrl-C again to quit at once)")
        self.stop_requested = True

    # ---- the loop ---------------------------------------------------------------------------

    def _start(self):
        """Models and position of a new run, or of the newest checkpoint that can be read.

        config.json is written only after a resumed run's checkpoint is restored.
        """
        options = self.options()
        if runs.read_state(self.config.run_dir) is None:
            models = self.build_phase(self.schedule.phases()[0])
            if self.is_chief:
                runs.write_json_atomic(os.path.join(self.config.run_dir, runs.CONFIG_FILE), options)
                reals = next(iter(self.dataset.batches(self.schedule.max_resolution, self.config.grid_size)))
                self.log.grid(0, "reals", reals.numpy())
            return models, Position()
        self._check_options(options)
        state, models, path = self.checkpointer.restore(
            lambda state: self.build_phase(self.schedule.phases()[state["phase_index"]]), warn=self.print)
        if self.is_chief:
            runs.write_json_atomic(os.path.join(self.config.run_dir, runs.CONFIG_FILE), options)
        phase = models.phase
        self.print(f"resumed from {path}: {phase.resolution}x{phase.resolution} {phase.name}, "
                   f"kimg {state['images_seen'] / 1000:.1f}, alpha {phase.alpha(state['images_seen']):.3f}")
        return models, Position(state["images_seen"], state["step"], state["phase_step"])

    def train(self, stop_at_images=None):
        """Train to the end of the schedule (or until `stop_at_images`), checkpointing; returns the final `state()`."""
        # The probes time convolutions: before _start(), whose data pipeline threads would slow them down.
        self.eta = progress.Eta(self.network, self.schedule, self.config.loss, progress.machine_rate(),
                                progress.probe_shapes)
        models, position = self._start()
        start_step, total = position.step, self.schedule.total_images
        end = total if stop_at_images is None else min(stop_at_images, total)
        if self.is_chief:
            devices = [d.split("device:")[-1] for d in self.strategy.extended.worker_devices]
            for line in progress.describe_plan(self.schedule, devices, self._eta(position.images_seen),
                                               position.images_seen):
                self.print(line)
        # Ctrl-C and SIGTERM finish the current call of the step and save, so no work is lost.
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            handlers = {sig: signal.signal(sig, self._request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            models = self._train_through_divergence(models, position, end)
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        # Rewriting an existing checkpoint (none taken since the start, or the loop's last save) could only lose it.
        if position.step not in (start_step, self.saved_step):
            try:
                self._save(models, position)
            except NonFinite as e:  # stopped between ticks with a bad step: keep the last good checkpoint
                self.print(f"warning: {e}; not saving them, the run resumes from its newest checkpoint")
        self.models, self.result = models, self.state(models.phase, position)
        if self.stop_requested:
            phase = models.phase
            self.print(f"stopped at {position.images_seen / 1000:.1f} kimg ({phase.resolution}x{phase.resolution} "
                       f"{phase.name}, alpha {phase.alpha(position.images_seen):.3f}); run the same command to resume")
        elif position.images_seen >= total and self.is_chief:
            self._export_final(models, position.images_seen)
        return self.result

    def _train_through_divergence(self, models, position, end):
        """_loop, restarted from the newest checkpoint (past the data since) when values go non-finite."""
        for retry in range(self.config.nan_retries + 1):
            try:
                return self._loop(models, position, end)
            except NonFinite as e:
                if retry == self.config.nan_retries:
                    raise RunError(f"training diverged: {e} {retry + 1} times, each after restoring the newest "
                                   f"checkpoint; lower the learning rates or check the data") from None
                models = self._recover(position, e)
        return models

    def _recover(self, position, reason):
        """The newest checkpoint (or the start), with `position` past the steps and data since it."""
        if runs.read_state(self.config.run_dir) is None:
            state, models = {"images_seen": 0, "phase_index": 0, "phase_step": 0}, \
                self.build_phase(self.schedule.phases()[0])
            where = "the start"
        else:
            state, models, where = self.checkpointer.restore(
                lambda state: self.build_phase(self.schedule.phases()[state["phase_index"]]), warn=self.print)
        same_phase = self.schedule.phase_at(position.images_seen).index == state["phase_index"]
        self.print(f"warning: {reason} at {position.images_seen / 1000:.1f} kimg; training again from {where} "
                   f"with the data and random draws after it")
        # The step counter (the random draws) and the data position go on from where it failed.
        position.images_seen = state["images_seen"]
        position.phase_step = position.phase_step if same_phase else state["phase_step"]
        return models

    def _loop(self, models, position, end):
        """Train from `position` (updated in place) to `end` images; returns the last phase's models."""
        config, k = self.config, self.config.steps_per_call
        train_steps, data = self.make_train_step(models, k), self.dataset_iterator(models.phase, position.phase_step)
        now = time.time()
        # timing: the tick's images/s (images, time); the ETA model's steps since `mark`; a trace under way.
        timing, pending = {"images": position.images_seen, "time": now, "mark": now, "steps": 0, "switch": now}, []
        next_tick = position.images_seen + config.tick_kimg * 1000
        next_checkpoint = position.images_seen + config.checkpoint_kimg * 1000
        while position.images_seen < end and not self.stop_requested:
            phase = self.schedule.phase_at(position.images_seen)
            if phase.index != models.phase.index:
                timing["switch"] = self._measure_steps(models, pending, timing)
                models, position.phase_step = self.build_phase(phase, previous=models), 0
                old = [data]
                train_steps, data = self.make_train_step(models, k), self.dataset_iterator(phase, 0)
                drop_in_background(old)
                self.print(f"phase {phase.index}: {phase.resolution}x{phase.resolution} {phase.name}, "
                           f"batch {phase.batch_size}, lr {phase.learning_rate:g}")
            # Up to k steps, ending with the step that reaches the next tick, checkpoint or phase end, so
            # those fall after the same steps whatever k is.
            stop = min(next_tick, next_checkpoint, phase.end, end)
            count = min(k, -int((position.images_seen - stop) // phase.batch_size))  # ceil of the steps to `stop`
            seen = [position.images_seen + i * phase.batch_size for i in range(count)]
            alphas = [phase.alpha(n) for n in seen] + [0.0] * (k - count)
            betas = [config.ema_beta(phase.batch_size, n) for n in seen] + [0.0] * (k - count)
            d_losses, g_losses = train_steps(data, tf.constant(position.step, tf.int64),
                                             tf.constant(alphas, tf.float32), tf.constant(betas, tf.float32),
                                             tf.constant(count, tf.int32))
            if timing["switch"] is not None:  # the first call of a phase: building and tracing are not steps
                now = time.time()
                self.eta.cost("switch", max(now - timing["switch"] - count * self.eta.step_seconds(phase), 0.0))
                timing.update(mark=now, switch=None)
            else:
                timing["steps"] += count
            # Losses stay on the device until the tick, so the host never waits for a call to finish.
            pending.append((d_losses[:count], g_losses[:count]))
            position.images_seen += count * phase.batch_size
            position.step += count
            position.phase_step += count
            if position.images_seen >= next_tick or position.images_seen >= end:
                self._tick(models, position.images_seen, pending, timing)
                pending, next_tick = [], position.images_seen + config.tick_kimg * 1000
            if position.images_seen >= next_checkpoint:
                began = self._measure_steps(models, pending, timing)
                self._save(models, position)
                timing["mark"] = time.time()
                self.eta.cost("checkpoint", timing["mark"] - began)
                next_checkpoint = position.images_seen + config.checkpoint_kimg * 1000
        old = [data]
        del data
        drop_in_background(old)
        return models

    def _export_final(self, models, images_seen):
        """Write the finished Gs to runs/<name>/final/ (SavedModel + generator.keras)."""
        path = export.export_generator(
            models.Gs, self.network, os.path.join(self.config.run_dir, "final"),
            {"images_seen": images_seen, "run_dir": os.path.abspath(self.config.run_dir)}, overwrite=True)
        self.print(f"exported Gs to {path}")
