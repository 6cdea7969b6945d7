"""How long a run will take: the plan before the first step, and the ETA of every tick.

The ETA comes from the schedule, not from the last tick's speed: the steps left in each phase times that phase's time
per step, plus a cost per phase switch (building the models, tracing the step), per tick and per checkpoint. A phase's
time per step is what the run measured in it once it has run there. For a phase not reached yet it is a prior,
`PRIOR_OVERHEAD + flops(phase) / rate` (the FLOPs counted by progan_tf.bench.flops, each conv's weighted by how fast its
shape runs on this machine in a short probe at the start), scaled by measured / prior of the latest measured phase: of
the same resolution if one ran, else of the largest resolution above the start one (the start resolution's tiny steps
are mostly fixed per-step cost, which says little about larger ones). Trace time never counts as step time, so the ETA
right after a start or a resume is as sane as later.
"""
import functools
import time

import numpy as np

from progan_tf.bench import flops

PRIOR_OVERHEAD = 0.004  # seconds per step before any is measured (a 2-core CPU runs 4x4 steps in ~5 ms)
PRIOR_COSTS = {"switch": 5.0, "tick": 0.3, "checkpoint": 1.0}  # seconds of each, before one is measured
EXPORT_SECONDS = 3.0  # the final export of Gs (1-2 s for the demo's 32x32 G on 2 cores)
# Without shape probes a whole step runs its FLOPs at about half the one probe's rate (the demo: 0.44-0.49
# from 8x8 to 32x32 on 2 cores: the penalty's second backward pass, normalisation, memory-bound ops).
PRIOR_EFFICIENCY = 0.5
# With each conv shape probed (`probe_shapes`: each shape's fastest window), a step runs its convs below
# their probed rates: the demo's ETA at its first two ticks, from this prior alone, was 18-26 % short in two
# runs on the Zen 4 kind with efficiency 1.0 (`benchmarks/eta.py`, 2026-12-05).
PRIOR_EFFICIENCY_PROBED = 0.8
_PROBE = (16, 16, 64, 64)  # batch, resolution, c_in, c_out of the probe convolution


def probe_rate(seconds=0.3):
    """This machine's FLOP/s for a mid-sized 3x3 convolution forward + backward, from a short timing."""
    from progan_tf.bench import peak
    return peak.conv_peak(*_PROBE, target_seconds=seconds, repeats=1, budget_seconds=0)["gflops"] * 1e9


@functools.lru_cache(maxsize=None)
def machine_rate():
    """`probe_rate()`, measured once per process."""
    return probe_rate()


PROBE_FLOPS = 2e9  # at most this much work per iteration of a shape's probe (a smaller image side past it)
PROBE_WINDOWS = 4
PROBE_SECONDS, PROBE_SECONDS_MIN, PROBE_SHARE = 0.4, 0.04, 0.01  # per shape; share of the run's FLOP time
_SHAPE_RATES = {}


def _conv_window(batch, side, c_in, c_out, seconds):
    """A function timing one window of about `seconds` of 3x3 conv forward + backward passes of this
    shape in `peak.loop_window`'s in-graph loop; and the FLOPs of one window."""
    import tensorflow as tf
    from progan_tf.bench import peak
    rng = np.random.default_rng(0)  # no TF random op: --deterministic refuses unseeded ones
    # Variables: read again in every iteration, so the loop cannot hoist the conv out as loop-invariant.
    x, w, dy = (tf.Variable(rng.standard_normal(shape, np.float32)) for shape in
                ([batch, side, side, c_in], [3, 3, c_in, c_out], [batch, side, side, c_out]))
    iterations, run_window = peak.loop_window(lambda: peak.conv_fwd_bwd(x, w, dy), seconds)

    def timed():
        began = time.perf_counter()
        run_window()
        return time.perf_counter() - began

    return timed, iterations * peak.conv_fwd_bwd_flops(batch, side, c_in, c_out)


def probe_shapes(keys, seconds=PROBE_SECONDS):
    """{key: FLOP/s} of a 3x3 conv forward + backward per (batch, side, c_in, c_out) in `keys` here, once per process.

    Small channel counts and small images run a conv well below the mid-sized probe's rate (on the Zen 3 machine a
    16-channel 32x32 conv at about half the rate of a 64-channel 8x8 one), which FLOPs alone do not tell. Each shape
    gets PROBE_WINDOWS windows of `seconds / PROBE_WINDOWS`, taken in turns over all the shapes, and its fastest window
    counts: a slow spell of the machine (seen lasting half a second on a 2-vCPU VM) then slows one window of each shape,
    not all of one. No wait for a quiet machine as in `peak.conv_peak`, to keep the start of a run short. Sides whose
    probe would exceed PROBE_FLOPS are measured at a smaller side.
    """
    todo = [key for key in dict.fromkeys(keys) if key not in _SHAPE_RATES]
    windows = {}
    for key in todo:
        batch, side, c_in, c_out = key
        while side > 8 and 54 * batch * side * side * c_in * c_out > PROBE_FLOPS:
            side //= 2
        windows[key] = _conv_window(batch, side, c_in, c_out, seconds / PROBE_WINDOWS)
    best = dict.fromkeys(todo, float("inf"))
    for _ in range(PROBE_WINDOWS):
        for key in todo:
            best[key] = min(best[key], windows[key][0]())
    for key in todo:
        _SHAPE_RATES[key] = windows[key][1] / best[key]
    return {key: _SHAPE_RATES[key] for key in keys}


class Eta:
    """Time per step, per phase switch, per tick and per checkpoint, from the prior and what the run measures.

    `network`, `schedule`, `loss`: the run's NetworkConfig, Schedule and loss (for the FLOP counts). `rate`: the probe's
    FLOP/s (`probe_rate()`); the prior runs steps at PRIOR_EFFICIENCY of it (with `probe`: at PRIOR_EFFICIENCY_PROBED of
    each shape's rate). `probe`: optional `probe_shapes`-like fn([(batch, side, c_in, c_out)], seconds per shape) ->
    {key: FLOP/s}; each conv's FLOPs then count at the rate its shape runs at here: `self.flops` holds each phase's step
    as FLOPs at `rate` (the FLOPs themselves when no probe is given).
    """

    def __init__(self, network, schedule, loss, rate, probe=None):
        self.schedule = schedule
        self.resolutions = {p.index: p.resolution for p in schedule.phases()}
        works = {}
        for p in self.schedule.phases():
            works[p] = flops.conv_work(network, p.resolution, p.fading, p.batch_size, loss)
            del works[p]["elementwise"]  # memory-bound work: paid for by the measured / prior ratio
        rates = {}
        if probe:
            keys = list(dict.fromkeys((p.batch_size, *key) for work in works.values() for key in work if key))
            steps = {p: (p.end - p.start) / p.batch_size for p in works}
            run_seconds = sum(steps[p] * sum(work.values()) for p, work in works.items()) / rate
            # A short run (a test, a smoke run) gets a shorter probe: probing takes at most PROBE_SHARE of it.
            seconds = min(PROBE_SECONDS, max(PROBE_SECONDS_MIN, PROBE_SHARE * run_seconds / len(keys)))
            rates = probe(keys, seconds)
        self.flops = {p.index: sum(f * (rate / rates[(p.batch_size, *key)] if probe and key else 1.0)
                                   for key, f in work.items()) for p, work in works.items()}
        self.rate = rate * (PRIOR_EFFICIENCY_PROBED if probe else PRIOR_EFFICIENCY)
        self.measured = {}  # phase index -> [steps, seconds]
        self.costs = {kind: [] for kind in PRIOR_COSTS}  # seconds of each, as measured

    def steps(self, phase, steps, seconds):
        """`steps` steady steps of `phase` took `seconds`."""
        if steps > 0:
            total = self.measured.setdefault(phase.index, [0, 0.0])
            total[0], total[1] = total[0] + steps, total[1] + seconds

    def cost(self, kind, seconds):
        """A phase switch (or the first trace), a tick or a checkpoint took `seconds`."""
        self.costs[kind].append(seconds)

    def prior(self, index):
        """Seconds per step of phase `index` by FLOPs alone."""
        return PRIOR_OVERHEAD + self.flops[index] / self.rate

    def step_seconds(self, phase):
        """Measured, or the prior scaled by measured / prior of the phase that best tells this machine."""
        known = {i: seconds / steps for i, (steps, seconds) in self.measured.items() if steps >= 10}
        if phase.index in known:
            return known[phase.index]
        resolution = self.resolutions[phase.index]
        basis = ([i for i in known if self.resolutions[i] == resolution] or
                 [i for i in known if self.resolutions[i] > self.schedule.start_resolution])
        if not basis:
            return self.prior(phase.index)
        latest = max(basis)
        return self.prior(phase.index) * known[latest] / self.prior(latest)

    def _median(self, kind):
        return float(np.median(self.costs[kind])) if self.costs[kind] else PRIOR_COSTS[kind]

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
