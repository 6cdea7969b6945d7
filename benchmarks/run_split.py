"""Where a whole run's wall time goes: steady steps, phase switches, ticks, checkpoints, export.

Trains a schedule end to end in this process (a fresh --run_dir), with a timer around each
part of the Trainer, and reports the wall time split into: steady-state calls of the step;
each phase switch (building G, D, Gs and the optimisers with the weights grown, the data
pipeline's start, and the first call's overhead: tracing, plus its steps beyond what they
cost in steady state); ticks (losses to the host, progress, grids, TensorBoard; evaluation
separately); checkpoints; the final export. Also the process's CPU time against wall time x
cores (utilisation) and the time a core was idle. The yardstick is the sum of steady-state
step times: every step of the schedule at its phase's steady speed.

  python benchmarks/run_split.py --flagfile=configs/demo.flags --run_dir=/tmp/split
  python benchmarks/run_split.py --flagfile=configs/demo.flags --run_dir=/tmp/split --total_kimg=60 --json=split.json
"""
import collections
import json
import os
import resource
import shutil
import time

from absl import app, flags

from progan_tf.cli import options as train_options  # progan-train's flags

flags.DEFINE_string("json", "", "Also write the split as JSON here.")
FLAGS = flags.FLAGS


class Timers:
    """Seconds per part, and the steady calls of each phase (steps, seconds)."""

    def __init__(self):
        self.parts = collections.defaultdict(float)
        self.first_calls = []  # (phase index, steps, seconds)
        self.steady = collections.defaultdict(lambda: [0, 0.0])  # phase index -> [steps, seconds]
        self.switches = []  # (phase index, build seconds)

    def wrap(self, obj, name, part):
        method = getattr(obj, name)

        def timed(*args, **kwargs):
            began = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.parts[part] += time.perf_counter() - began
        setattr(obj, name, timed)


def instrument(trainer, timers):
    """Timers around the Trainer's parts (a benchmark may reach inside; the tests never do)."""
    build = trainer.build_phase

    def build_phase(phase, previous=None):
        began = time.perf_counter()
        models = build(phase, previous)
        timers.switches.append((phase.index, time.perf_counter() - began))
        return models
    trainer.build_phase = build_phase
    make = trainer.make_train_step

    def make_train_step(models, steps_per_call):
        fn, first = make(models, steps_per_call), [True]

        def call(data, step, alphas, betas, count):
            began = time.perf_counter()
            out = fn(data, step, alphas, betas, count)
            out[0].numpy()  # the call's steps are done
            seconds, steps = time.perf_counter() - began, int(count.numpy())
            if first[0]:
                timers.first_calls.append((models.phase.index, steps, seconds))
                first[0] = False
            else:
                timers.steady[models.phase.index][0] += steps
                timers.steady[models.phase.index][1] += seconds
            return out
        return call
    trainer.make_train_step = make_train_step
    timers.wrap(trainer, "dataset_iterator", "data pipeline start")
    timers.wrap(trainer, "_evaluate", "evaluation")
    timers.wrap(trainer, "_tick", "ticks (with evaluation)")
    timers.wrap(trainer, "_save", "checkpoints")
    timers.wrap(trainer, "_export_final", "final export")
    timers.wrap(trainer, "_start", "start: models and position (new or resumed)")


def split(timers, wall, cpu, cores, schedule):
    """The report's rows: (what, seconds) and the summary numbers."""
    rate = {i: s / n for i, (n, s) in timers.steady.items() if n}
    steps = collections.Counter()
    for i, n, _ in timers.first_calls:
        steps[i] += n
    for i, (n, _) in timers.steady.items():
        steps[i] += n
    fallback = max(rate.values()) if rate else 0.0
    steady_sum = sum(n * rate.get(i, fallback) for i, n in steps.items())
    first_extra = sum(max(s - n * rate.get(i, fallback), 0.0) for i, n, s in timers.first_calls)
    build = sum(s for _, s in timers.switches)
    parts = dict(timers.parts)
    ticks = parts.pop("ticks (with evaluation)", 0.0) - parts.get("evaluation", 0.0)
    measured = sum(s for _, s in timers.steady.values())
    first_steps = sum(min(n * rate.get(i, fallback), s) for i, n, s in timers.first_calls)
    rows = [("steady calls of the step (measured)", measured),
            ("first call of each phase: its steps at steady speed", first_steps),
            ("phase switches: build G, D, Gs, optimisers, grow weights", build),
            ("phase switches: first call beyond its steps (tracing)", first_extra),
            ("phase switches: data pipeline start", parts.pop("data pipeline start", 0.0)),
            ("ticks: losses, progress, grids, TensorBoard", ticks)]
    rows += [(name, seconds) for name, seconds in parts.items()]
    rows.append(("other (outside every timed part)", wall - sum(s for _, s in rows)))
    per_switch = {}
    for (i, b), (j, n, s) in zip(timers.switches, timers.first_calls):
        per_switch[i] = b + max(s - n * rate.get(j, fallback), 0.0)
    phases = schedule.phases()
    return rows, {"wall_seconds": wall, "cpu_seconds": cpu, "cores": cores,
                  "utilisation": cpu / (wall * cores), "idle_core_seconds": wall * cores - cpu,
                  "steady_sum_seconds": steady_sum, "wall_over_steady": wall / steady_sum if steady_sum else None,
                  "switch_seconds": {str(i): s for i, s in per_switch.items()},
                  "steady_images_per_second": {
                      f"{phases[i].resolution}{' fade' if phases[i].fading else ''}": phases[i].batch_size / r
                      for i, r in rate.items()}}


def main(argv):
    del argv
    from progan_tf.training import launch, trainer as trainer_lib
    network, schedule, train = train_options.options_from_flags(FLAGS)
    shutil.rmtree(train.run_dir, ignore_errors=True)
    data = launch.open_training_data(network, FLAGS.data_dir, FLAGS.synthetic_images, train.seed)
    cores = len(os.sched_getaffinity(0))
    usage = lambda: sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                        for f in ("ru_utime", "ru_stime"))
    cpu0, began = usage(), time.perf_counter()
    trainer = trainer_lib.Trainer(network, schedule, train, data)
    timers = Timers()
    instrument(trainer, timers)
    timers.wrap(trainer_lib.progress, "machine_rate", "start: the ETA's machine probe")
    timers.wrap(trainer_lib.progress, "probe_shape", "start: the ETA's machine probe")
    trainer.train()
    wall, cpu = time.perf_counter() - began, usage() - cpu0
    rows, summary = split(timers, wall, cpu, cores, schedule)
    print("\n| part | seconds | share |\n|---|---:|---:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.1f} | {seconds / wall:.1%} |")
    print(f"| **wall** | {wall:.1f} | |")
    print(f"| yardstick: every step at its phase's steady speed | {summary['steady_sum_seconds']:.1f} | |")
    print(f"\nwall / steady-state sum {summary['wall_over_steady']:.3f}; CPU {cpu:.0f} s of {wall * cores:.0f} "
          f"core-seconds ({summary['utilisation']:.0%} of {cores} cores, {summary['idle_core_seconds']:.0f} idle)")
    print("phase switches (s): " + ", ".join(f"{k}: {v:.1f}" for k, v in summary["switch_seconds"].items()))
    print("steady img/s: " + ", ".join(f"{k}: {v:.0f}" for k, v in summary["steady_images_per_second"].items()))
    if FLAGS.json:
        with open(FLAGS.json, "w", encoding="utf-8") as f:
            json.dump({"rows": rows, **summary}, f, indent=2)


if __name__ == "__main__":
    app.run(main)
