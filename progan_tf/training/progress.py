"""How long a run will take: the plan before the first step, and the ETA of every tick.

The ETA comes from the schedule, not from the last tick's speed: the steps left in each
phase times that phase's time per step, plus a cost per phase switch (building the
models, tracing the step), per tick and per checkpoint. A phase's time per step is what
the run measured in it once it has run there; for phases not reached yet it is
`flops(phase) / rate + elementwise(phase) * elementwise_seconds`: the FLOPs counted by
progan_tf.bench.flops, each conv's weighted by how fast its shape runs on this machine (a
short probe of each shape at the start), plus the memory-bound element-wise work, both
fitted to the phases measured so far, with UNREACHED_MARGIN for a resolution not reached
yet (a fade or stable phase whose sibling of the same resolution ran scales that sibling's
measured time instead). Before any step: the probed rates themselves
(without shape probes, one mid-sized probe's rate derated by PRIOR_EFFICIENCY) and a small
fixed overhead. Trace time never counts as step time, so the ETA right after a start or a
resume is as sane as later.
"""
import time

import numpy as np

from progan_tf.bench import flops

PRIOR_OVERHEAD = 0.004  # seconds per step before any is measured (a 2-core CPU runs 4x4 steps in ~5 ms)
PRIOR_COSTS = {"switch": 5.0, "tick": 0.3, "checkpoint": 1.0}  # seconds of each, before one is measured
EXPORT_SECONDS = 3.0  # the final export of Gs (1-2 s for the demo's 32x32 G on 2 cores)
# A whole training step runs its FLOPs slower than the probe's lone convolution (the penalty's
# second backward pass, normalisation and other memory-bound ops): the demo's steps ran at 0.44-0.49
# of the probe's rate from 8x8 to 32x32 on 2 cores. Phases are extrapolated at this fraction until two
# phases are measured and their fit gives the machine's own rate.
PRIOR_EFFICIENCY = 0.5
# With each conv shape probed (`probe_shape`), a step runs its convs at about their probed rates (the
# demo's 8x8 step: 50 ms against about 45-52 ms of probed conv time), so the prior keeps the probed rates.
PRIOR_EFFICIENCY_PROBED = 1.0
# Resolutions not reached yet run slower per probed FLOP than the fit through the smaller ones says:
# in three demo runs on a 2-vCPU AMD EPYC (Zen 3) the 16x16 and 32x32 phases took 20-35 % longer than
# predicted from 4x4 and 8x8 (their activations outgrow the caches; the input pipeline's work per image
# shares the two cores). An ETA that runs long is corrected as the phases are reached; one that runs
# short misleads.
UNREACHED_MARGIN = 1.2
_PROBE = (16, 16, 64, 64)  # batch, resolution, c_in, c_out of the probe convolution


def probe_rate(seconds=0.3):
    """This machine's FLOP/s for a mid-sized 3x3 convolution forward + backward, from a short timing."""
    from progan_tf.bench import peak
    return peak.conv_peak(*_PROBE, target_seconds=seconds, repeats=1, budget_seconds=0)["gflops"] * 1e9


_RATE = []


def machine_rate():
    """`probe_rate()`, measured once per process."""
    if not _RATE:
        _RATE.append(probe_rate())
    return _RATE[0]


PROBE_FLOPS = 2e9  # at most this much work per iteration of a shape's probe (a smaller image side past it)
_SHAPE_RATES = {}


def probe_shape(batch, side, c_in, c_out, seconds=0.1):
    """FLOP/s of a 3x3 conv forward + backward of this shape on this machine (measured once per process).

    Small channel counts and small images run a conv well below the mid-sized probe's rate (on the
    Zen 3 machine a 16-channel 32x32 conv at about half the rate of a 64-channel 8x8 one), which
    FLOPs alone do not tell. Timed with plain calls, not `peak.conv_peak`'s quiet windows, to
    keep the start of a run short. Sides
    whose probe would exceed PROBE_FLOPS are measured at a smaller side.
    """
    key = (batch, side, c_in, c_out)
    if key not in _SHAPE_RATES:
        import tensorflow as tf
        from progan_tf.bench import peak
        while side > 8 and 54 * batch * side * side * c_in * c_out > PROBE_FLOPS:
            side //= 2
        rng = np.random.default_rng(0)  # no TF random op: --deterministic refuses unseeded ones
        x, w, dy = (tf.constant(rng.standard_normal(shape, np.float32)) for shape in
                    ([batch, side, side, c_in], [3, 3, c_in, c_out], [batch, side, side, c_out]))
        call = tf.function(lambda: peak.conv_fwd_bwd(x, w, dy))
        call().numpy()  # trace and warm up
        calls, began = 0, time.perf_counter()
        while calls < 2 or time.perf_counter() - began < seconds:
            call().numpy()
            calls += 1
        _SHAPE_RATES[key] = calls * peak.conv_fwd_bwd_flops(batch, side, c_in, c_out) / (time.perf_counter() - began)
    return _SHAPE_RATES[key]


class Eta:
    """Time per step, per phase switch, per tick and per checkpoint, fitted to what the run measures.

    Args:
      network, schedule, loss: the run's NetworkConfig, Schedule and loss (for the FLOP counts).
      rate: the probe's FLOP/s (`probe_rate()`); steps are expected at PRIOR_EFFICIENCY of it (with
        `probe`: at PRIOR_EFFICIENCY_PROBED of each shape's rate) until two phases are measured.
      probe: optional `probe_shape`-like function (batch, side, c_in, c_out) -> FLOP/s. Each
        conv's FLOPs then count at the rate its shape runs at here: `self.flops` holds each phase's
        step as FLOPs at `rate` (the FLOPs themselves when no probe is given).
    """

    def __init__(self, network, schedule, loss, rate, probe=None):
        self.schedule = schedule
        self.resolutions = {p.index: p.resolution for p in schedule.phases()}
        self.flops, self.elementwise = {}, {}
        for p in schedule.phases():
            work = flops.conv_work(network, p.resolution, p.fading, p.batch_size, loss)
            self.elementwise[p.index] = work.pop("elementwise")
            self.flops[p.index] = sum(f * (rate / probe(p.batch_size, *key) if probe and key else 1.0)
                                      for key, f in work.items())
        self.rate = rate * (PRIOR_EFFICIENCY_PROBED if probe else PRIOR_EFFICIENCY)
        self.overhead = PRIOR_OVERHEAD  # until a step is measured
        self.elementwise_seconds = 0.0  # per element-wise FLOP, beyond what the rate pays for
        self.measured = {}  # phase index -> [steps, seconds]
        self.costs = {kind: [] for kind in PRIOR_COSTS}  # seconds of each, as measured

    def steps(self, phase, steps, seconds):
        """`steps` steady steps of `phase` took `seconds`."""
        if steps <= 0:
            return
        total = self.measured.setdefault(phase.index, [0, 0.0])
        total[0], total[1] = total[0] + steps, total[1] + seconds
        self._fit()

    def cost(self, kind, seconds):
        """A phase switch (or the first trace), a tick or a checkpoint took `seconds`."""
        self.costs[kind].append(seconds)

    def step_seconds(self, phase):
        """Measured, or from a measured phase of the same resolution, or the fitted model with a margin."""
        steps, seconds = self.measured.get(phase.index, (0, 0.0))
        if steps >= 10:
            return seconds / steps
        for index, (steps, seconds) in self.measured.items():  # the fade of this stable phase, or its reverse
            if steps >= 10 and self.resolutions[index] == self.resolutions[phase.index]:
                return seconds / steps * self._model(phase.index) / self._model(index)
        return self._model(phase.index) * (UNREACHED_MARGIN if self.measured else 1.0)

    def _model(self, index):
        return self.overhead + self.flops[index] / self.rate + self.elementwise[index] * self.elementwise_seconds

    def _median(self, kind):
        return float(np.median(self.costs[kind])) if self.costs[kind] else PRIOR_COSTS[kind]

    def _fit(self):
        """flops / rate + elementwise * elementwise_seconds through the measured phases.

        The element-wise layers (normalisation, activations, biases, fades) are memory-bound, and
        their share of a step grows where the convs are thin: the demo's 32x32 steps ran 15-25 %
        slower per probed conv FLOP than its 8x8 ones. Both terms are fitted once two measured
        phases differ enough in that share; before, all the time goes to the convs.
        """
        x = np.array([self.flops[i] for i in self.measured])
        e = np.array([self.elementwise[i] for i in self.measured])
        y = np.array([seconds / steps for steps, seconds in self.measured.values()])
        self.overhead, self.elementwise_seconds = 0.0, 0.0
        share = e / x
        if len(x) >= 2 and np.ptp(share) > 0.2 * share.max():
            (per_flop, per_elementwise), *_ = np.linalg.lstsq(np.stack([x, e], axis=1), y, rcond=None)
            if per_flop > 0 and per_elementwise >= 0:
                self.rate, self.elementwise_seconds = 1.0 / per_flop, float(per_elementwise)
                return
        self.rate = float(np.sum(x) / np.sum(y))

    def remaining(self, images_seen, tick_images, checkpoint_images):
        """Seconds from `images_seen` to the end of the schedule: switches, ticks, checkpoints and the export."""
        end = self.schedule.total_images
        seconds, current = 0.0, self.schedule.phase_at(images_seen).index
        for phase in self.schedule.phases():
            left = phase.end - max(images_seen, phase.start)
            if left > 0:
                seconds += -(-left // phase.batch_size) * self.step_seconds(phase)
                seconds += self._median("switch") if phase.index > current else 0.0
        left = max(end - images_seen, 0)
        return (seconds + EXPORT_SECONDS + left / tick_images * self._median("tick")
                + left / checkpoint_images * self._median("checkpoint"))


def describe_plan(schedule, devices, seconds, images_seen=0):
    """The plan in a few lines: the phases, the images, the devices and the estimated time (`seconds`)."""
    from progan_tf.training.snapshots import format_duration
    by_resolution = {}
    for phase in schedule.phases():
        by_resolution.setdefault(phase.resolution, []).append(f"{phase.name} {(phase.end - phase.start) / 1000:g}")
    stages = ", ".join(f"{r}x{r} {' + '.join(parts)}" for r, parts in by_resolution.items())
    done = f", {images_seen / 1000:.1f} done" if images_seen else ""
    return [f"plan: {len(schedule.phases())} phases, {schedule.total_images / 1000:g} kimg{done} "
            f"(kimg per phase: {stages})",
            f"devices: {', '.join(devices)}",
            f"estimated time: {format_duration(seconds)} (FLOPs of each phase at this machine's measured "
            f"convolution rate; refined by each tick)"]
