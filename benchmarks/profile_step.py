"""Where the training step's time goes: a tf.profiler trace and a table of time per op type.

  python benchmarks/profile_step.py --resolution 32                       # reference CPU config
  python benchmarks/profile_step.py --resolution 128 --max_resolution 128 --logdir prof/

The step is the trainer's own (`steps_per_call` steps per call) on synthetic in-memory
images, as progan-bench times it. The trace in `--logdir` opens in TensorBoard's profile
tab (with tensorboard-plugin-profile). The table adds up, per op type, the time the
op's kernels ran on TensorFlow's threads, per training step: ops run concurrently on
the inter-op threads, so the column sums to more than the wall time.
"""
import argparse
import collections
import glob
import tempfile
import time

import tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from progan_tf.bench import throughput
from progan_tf.training.config import TrainConfig
from progan_tf.training.trainer import Trainer

def op_type(event_name):
    """'scope/name:Type' -> 'Type' for TensorFlow op events; None for the profiler's other events."""
    if event_name.count(":") != 1 or " " in event_name:
        return None
    kind = event_name.split(":")[1]
    if kind in ("StatefulPartitionedCall", "PartitionedCall", "While", "_Arg", "_Retval") or \
            not kind.isidentifier():
        return None
    return kind


def _op_events(logdir):
    """(op type, start ps, end ps) of every TensorFlow op the host (CPU) planes of the newest trace in `logdir` ran."""
    paths = sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))
    if not paths:
        raise FileNotFoundError(f"no *.xplane.pb trace under {logdir}")
    space = xplane_pb2.XSpace()
    with open(paths[-1], "rb") as f:
        space.ParseFromString(f.read())
    events = []
    for plane in space.planes:
        if "CPU" not in plane.name:
            continue
        for line in plane.lines:
            for event in line.events:
                name = op_type(plane.event_metadata[event.metadata_id].name)
                if name:
                    start = line.timestamp_ns * 1000 + event.offset_ps
                    events.append((name, start, start + event.duration_ps))
    return events


def op_times(events):
    """{op type: (seconds, count)} of `_op_events`."""
    totals = collections.defaultdict(lambda: [0.0, 0])
    for op_type, start, end in events:
        totals[op_type][0] += (end - start) * 1e-12
        totals[op_type][1] += 1
    return {k: tuple(v) for k, v in totals.items()}


def concurrency(events):
    """Fractions of the span from the first op's start to the last op's end with 0, 1, 2, ... ops running.

    With two inter-op threads, time with fewer than two ops running is where a thread
    could have idled; the op-time table cannot show it.
    """
    edges = sorted([(start, 1) for _, start, _ in events] + [(end, -1) for _, _, end in events])
    span = edges[-1][0] - edges[0][0]
    shares = collections.Counter()
    running, last = 0, edges[0][0]
    for time_ps, step in edges:
        shares[running] += (time_ps - last) / span
        running, last = running + step, time_ps
    return dict(sorted(shares.items()))


def kind(op_type):
    """'conv', 'matmul' or 'other' (element-wise, reductions, optimizer, bookkeeping)."""
    return "conv" if "Conv2D" in op_type else "matmul" if "MatMul" in op_type else "other"


def profile_phase(trainer, phase, logdir, calls=1):
    """Warm up, then trace `calls` calls of the phase's step.

    Returns:
      dict: wall ms per step, steps traced, shares of the traced span by ops running at once,
        and rows (op type, kind, ms per step, ops per step, share).
    """
    run, k = throughput.phase_runner(trainer, phase)
    run(2)  # trace and warm up
    tf.profiler.experimental.start(logdir)
    start = time.perf_counter()
    run(calls)
    wall = time.perf_counter() - start
    tf.profiler.experimental.stop()
    steps = calls * k
    events = _op_events(logdir)
    times = op_times(events)
    busy = sum(seconds for seconds, _ in times.values())
    rows = [{"op": op, "kind": kind(op), "ms_per_step": seconds / steps * 1e3, "ops_per_step": n / steps,
             "share": seconds / busy} for op, (seconds, n) in sorted(times.items(), key=lambda kv: -kv[1][0])]
    by_kind = collections.Counter()
    for row in rows:
        by_kind[row["kind"]] += row["share"]
    return {"resolution": phase.resolution, "phase": phase.name, "steps": steps, "wall_ms_per_step": wall / steps * 1e3,
            "busy_ms_per_step": busy / steps * 1e3, "share_by_kind": dict(by_kind),
            "ops_running": concurrency(events), "rows": rows}


def print_profile(result, top=20, print_fn=print):
    print_fn(f"{result['resolution']}x{result['resolution']} {result['phase']}: {result['wall_ms_per_step']:.1f} ms "
             f"wall per step, {result['busy_ms_per_step']:.1f} ms of op time per step "
             f"({', '.join(f'{k} {v:.1%}' for k, v in sorted(result['share_by_kind'].items()))})")
    print_fn("ops running at once: " + ", ".join(f"{n} {share:.1%}" for n, share in result["ops_running"].items())
             + " of the traced span")
    print_fn(f"{'op type':<40} {'kind':<6} {'ms/step':>8} {'ops/step':>8} {'share':>6}")
    for row in result["rows"][:top]:
        print_fn(f"{row['op']:<40} {row['kind']:<6} {row['ms_per_step']:8.2f} {row['ops_per_step']:8.1f} "
                 f"{row['share']:6.1%}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resolution", type=int, default=32, help="the stable phase to profile")
    parser.add_argument("--max_resolution", type=int, default=64, help="the reference network's final resolution")
    parser.add_argument("--paper", action="store_true", help="the paper's 1024x1024 networks and batch sizes")
    parser.add_argument("--calls", type=int, default=1, help="calls of the step to trace")
    parser.add_argument("--steps_per_call", type=int, default=TrainConfig.steps_per_call)
    parser.add_argument("--logdir", default="", help="where the trace goes (default: a temporary directory)")
    parser.add_argument("--top", type=int, default=20, help="op types in the table")
    args = parser.parse_args()
    network, schedule = throughput.reference_options(paper=args.paper, max_resolution=args.max_resolution)
    phases = [p for p in schedule.phases() if p.resolution == args.resolution and not p.fading]
    if not phases:
        parser.error(f"--resolution={args.resolution} is not a resolution of this network")
    config = TrainConfig(run_dir=tempfile.mkdtemp(prefix="progan_profile_"), steps_per_call=args.steps_per_call)
    trainer = Trainer(network, schedule, config, None, print_fn=lambda *_: None)
    logdir = args.logdir or tempfile.mkdtemp(prefix="progan_trace_")
    print_profile(profile_phase(trainer, phases[0], logdir, args.calls), args.top)
    print(f"trace: {logdir}")


if __name__ == "__main__":
    main()
