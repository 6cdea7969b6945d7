"""TrainConfig, and the checks that need several configs at once (replicas, data, network)."""
import dataclasses

from progan_tf import losses
from progan_tf.errors import ConfigError
from progan_tf.metrics import evaluate

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything about a run that is not the network or the schedule.

    Attributes:
      run_dir: run directory: checkpoints, samples, logs, the final export.
      loss: wgan_gp (the paper) | lsgan | logistic.
      gp_lambda: WGAN-GP gradient-penalty weight (10).
      drift: WGAN-GP drift weight on D(real)^2, the paper's epsilon_drift (0.001).
      r1_gamma: R1 penalty weight of the logistic loss (10).
      adam_beta1: Adam beta1 (0).
      adam_beta2: Adam beta2 (0.99).
      adam_epsilon: Adam epsilon (1e-8).
      ema: keep the generator average Gs; False is the ablation "no EMA": samples, metrics and
        exports use G itself (--noema).
      g_ema_beta: decay of Gs per step (0.999).
      g_ema_kimg: if > 0, the half-life of Gs in kimg instead of g_ema_beta:
        beta = 0.5 ** (batch / (1000 * g_ema_kimg)), the same window at any batch size.
      g_ema_rampup: with g_ema_kimg, the half-life is at most this times the images seen, so early
        images are not averaged over a window longer than the run so far (0 = off; StyleGAN2: 0.05).
      mirror: random left-right flips of the training images.
      seed: seeds the weights, latents, penalty interpolation and data order.
      tick_kimg: thousands of images between progress lines and sample grids.
      checkpoint_kimg: thousands of images between checkpoints.
      keep_checkpoints: checkpoints kept on disk (at least 2).
      precision: float32 | mixed_float16 (loss-scaled) | mixed_bfloat16.
      xla: XLA-compile the step (one device only; slower on CPU). XLA turns the same random bits into
        other floats, so a run with it draws other latents than one without.
      grid_size: fixed-latent samples per grid.
      metrics: metrics of Gs evaluated during training: swd, msssim.
      metrics_every_kimg: thousands of images between evaluations (0 = never).
      metrics_num_images: images per evaluation (the paper: 16384).
      steps_per_call: training steps per call of the compiled step (>= 1); results do not depend on
        it, more saves the per-call cost that dominates small steps.
      nan_retries: times a run whose losses or weights turn NaN or Inf restores its newest checkpoint
        and goes on past the data that caused it, before it gives up.
      allow_data_change: resume on other data than the run started on (its config.json records which).
    """
    run_dir: str = "runs/progan"
    loss: str = "wgan_gp"
    gp_lambda: float = 10.0
    drift: float = 0.001
    r1_gamma: float = 10.0
    adam_beta1: float = 0.0
    adam_beta2: float = 0.99
    adam_epsilon: float = 1e-8
    ema: bool = True
    g_ema_beta: float = 0.999
    g_ema_kimg: float = 0.0
    g_ema_rampup: float = 0.0
    mirror: bool = False
    seed: int = 0
    tick_kimg: float = 160
    checkpoint_kimg: float = 1000
    keep_checkpoints: int = 3
    precision: str = "float32"
    xla: bool = False
    grid_size: int = 64
    metrics: tuple = ()
    metrics_every_kimg: float = 0
    metrics_num_images: int = 10000
    steps_per_call: int = 8
    nan_retries: int = 3
    allow_data_change: bool = False

    def __post_init__(self):
        object.__setattr__(self, "metrics", tuple(self.metrics))
        if self.loss not in losses.LOSSES:
            raise ConfigError("{loss}={value!r} is unknown; choose one of {choices}", value=self.loss,
                              choices=", ".join(losses.LOSSES))
        if self.precision not in PRECISIONS:
            raise ConfigError("{precision}={value!r} is unknown; choose one of {choices}", value=self.precision,
                              choices=", ".join(PRECISIONS))
        _check_ranges(self)
        if self.metrics:
            if "fid" in self.metrics:
                raise ConfigError("{metrics}: FID needs Inception weights; evaluate it with progan-eval after training")
            try:
                evaluate.validate_metrics(self.metrics)
            except ValueError as e:
                raise ConfigError("{metrics}: {reason}", reason=e) from None
        if not self.ema and self.g_ema_kimg:
            raise ConfigError("{ema} is off but {g_ema_kimg}={value} is set; drop one", value=self.g_ema_kimg)

    def ema_beta(self, batch_size, images_seen):
        """The decay of Gs for a step of `batch_size` images taken at `images_seen`."""
        if not self.ema:
            return 0.0
        if not self.g_ema_kimg:
            return self.g_ema_beta
        half_life = self.g_ema_kimg * 1000
        if self.g_ema_rampup:
            half_life = min(half_life, images_seen * self.g_ema_rampup)
        return 0.5 ** (batch_size / max(half_life, 1e-8))


def _at_least(low):
    return lambda v: v >= low, f">= {low}"


_POSITIVE = (lambda v: v > 0, "> 0")
_UNIT_INTERVAL = (lambda v: 0 <= v < 1, "in [0, 1)")


# The allowed values of every number in TrainConfig: field -> (test, what the message says).
_RANGES = {"gp_lambda": _at_least(0), "drift": _at_least(0), "r1_gamma": _at_least(0), "adam_beta1": _UNIT_INTERVAL,
           "adam_beta2": _UNIT_INTERVAL, "adam_epsilon": _POSITIVE, "g_ema_beta": _UNIT_INTERVAL,
           "g_ema_kimg": _at_least(0), "g_ema_rampup": _at_least(0), "tick_kimg": _POSITIVE,
           "checkpoint_kimg": _POSITIVE, "keep_checkpoints": _at_least(2), "grid_size": _at_least(1),
           "metrics_every_kimg": _at_least(0), "metrics_num_images": _at_least(2), "steps_per_call": _at_least(1),
           "nan_retries": _at_least(0), "seed": (lambda v: 0 <= v < 2 ** 31, "in [0, 2**31)")}


def _check_ranges(config):
    for name, (allowed, text) in _RANGES.items():
        value = getattr(config, name)
        if not allowed(value):
            raise ConfigError(f"{{{name}}}={{value}} must be {text}", value=value)


def validate(network, schedule, config, num_replicas, dataset=None):
    """Reject options that do not fit together, before any heavy work, with a one-line ConfigError naming them."""
    if schedule.max_resolution != network.resolution:
        raise ConfigError("the schedule ends at {top} but {resolution}={value}", top=schedule.max_resolution,
                          value=network.resolution)
    if config.xla and num_replicas > 1:
        raise ConfigError("{xla} compiles single-replica steps only; drop {xla} or use one device")
    group = network.mbstd_group_size
    for res in schedule.resolutions:
        batch = schedule.batch_size(res)
        if batch % num_replicas:
            raise ConfigError("batch size {batch} at {res}x{res} is not divisible by the {n} replicas; change "
                              "{batch_sizes} or {devices}", batch=batch, res=res, n=num_replicas)
        per_replica = batch // num_replicas
        if group and per_replica > group and per_replica % group:
            raise ConfigError("per-replica batch {batch} at {res}x{res} is not divisible by {mbstd_group_size}="
                              "{group}; change {batch_sizes} or {mbstd_group_size}", batch=per_replica, res=res,
                              group=group)
    if dataset is not None:
        if dataset.num_channels != network.num_channels:
            raise ConfigError("the data has {n} channels but {num_channels}={value}; make them match",
                              n=dataset.num_channels, value=network.num_channels)
        if dataset.max_resolution < network.resolution:
            raise ConfigError("the data's largest resolution is {top}, below {resolution}={value}; lower "
                              "{resolution} or prepare larger images", top=dataset.max_resolution,
                              value=network.resolution)


def check_resume(saved, options, run_dir, allow_data_change=False):
    """A resumed run must be the one its config.json (`saved`) describes; `options` are this run's `Trainer.options()`.

    ConfigError if an option that shapes the checkpoints differs, or the data does (without `allow_data_change`).
    """
    changed = [k for k in options["network"] if saved.get("network", {}).get(k) != options["network"][k]]
    changed += [k for k in ("loss", "seed") if saved.get("train", {}).get(k) != options["train"][k]]
    changed += [k for k in options["schedule"] if k != "total_kimg"
                and saved.get("schedule", {}).get(k) != options["schedule"][k]]
    if changed:
        raise ConfigError("{path} holds a run started with different {changed}; resume with the same options or "
                          "choose a new {run_dir}", path=run_dir, changed=", ".join(changed))
    old, new = saved.get("data"), options.get("data")
    if old and new and old.get("fingerprint") != new.get("fingerprint") and not allow_data_change:
        raise ConfigError("{path} was trained on {old_name} ({old_n} images, fingerprint {old_fp}), not on {new_name} "
                          "({new_n} images, {new_fp}); resume on the same data or pass {allow_data_change}",
                          path=run_dir, old_name=old.get("name"), old_n=old.get("num_images"),
                          old_fp=old.get("fingerprint"), new_name=new.get("name"), new_n=new.get("num_images"),
                          new_fp=new.get("fingerprint"))
