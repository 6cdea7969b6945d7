"""This machine's measured float32 peak in TensorFlow: a large matmul and 3x3 convolutions.

  progan-bench --peak_only [--json peak.json]

The convolution is timed forward + backward (Conv2D, Conv2DBackpropInput, Conv2DBackpropFilter: 3 x 2 x MACs) at the
shapes ProGAN trains at, since that is what a training step is made of; `progan-bench` reports its achieved FLOP/s as
a fraction of the best of these. MACs are counted as `progan_tf.bench.flops` counts them: executed (taps on the image)
for the peak, nominal (zero padding included) beside it.

Quiet-machine rule: every timed window also measures the CPU time other processes used during it, and a window in
which they used more than `max_other_cores` is thrown away and repeated. If the machine does not get quiet within the
time budget, the noisy windows are kept and the result says so (`"quiet": false`).
"""
import json
import statistics
import time

import psutil
import tensorflow as tf

from progan_tf.bench import flops as flops_lib
from progan_tf.errors import ConfigError

MAX_OTHER_CORES = 0.15

# (batch, resolution, c_in, c_out): the reference CPU config's 3x3 convs (fmap_max 128, batch 32)
# and the paper's 512-channel ones.
CONV_SHAPES = [(32, 8, 128, 128), (32, 16, 128, 128), (32, 32, 64, 64), (32, 64, 32, 32), (32, 32, 128, 128),
               (16, 16, 512, 512)]


def _busy_seconds():
    t = psutil.cpu_times()
    idle = t.idle + getattr(t, "iowait", 0.0)
    # guest time is already inside user time.
    total = sum(getattr(t, f) for f in t._fields if f not in ("guest", "guest_nice"))
    return total - idle


class OtherLoad:
    """CPU cores used by everything but this process between __enter__ and __exit__."""

    def __enter__(self):
        self._me = psutil.Process()
        self._start = (time.perf_counter(), _busy_seconds(), sum(self._me.cpu_times()[:2]))
        return self

    def __exit__(self, *exc):
        wall, busy, mine = time.perf_counter(), _busy_seconds(), sum(self._me.cpu_times()[:2])
        self.seconds = wall - self._start[0]
        self.cores = max(0.0, (busy - self._start[1]) - (mine - self._start[2])) / max(self.seconds, 1e-9)
        return False


def wait_for_quiet(max_other_cores=MAX_OTHER_CORES, probe_seconds=0.5, deadline=None):
    """Sleep until a probe of `probe_seconds` sees other processes below the threshold -> True; False if `deadline`
    (a time.monotonic() value) passed first."""
    while True:
        with OtherLoad() as load:
            time.sleep(probe_seconds)
        if load.cores <= max_other_cores:
            return True
        if deadline is not None and time.monotonic() > deadline:
            return False
        time.sleep(2.0)


def timed_windows(run_window, repeats=5, max_other_cores=MAX_OTHER_CORES, budget_seconds=300.0):
    """Time `run_window()` (which must block until done) until `repeats` windows were quiet, or the budget runs out.

    A window is quiet if other processes used at most `max_other_cores`; after `budget_seconds` the noisy windows
    count. Returns a dict: seconds (the windows used, quiet ones if there are enough), median, spread
    ((max - min) / median), other_cores per window used, quiet (all used windows quiet), rejected (noisy ones dropped).
    """
    deadline, quiet, noisy = time.monotonic() + budget_seconds, [], []

    def window():
        with OtherLoad() as load:
            run_window()
        (quiet if load.cores <= max_other_cores else noisy).append((load.seconds, load.cores))

    # No budget: no probe of the load before each window (a run's start-up rate probe would sleep 0.5 s for nothing).
    while len(quiet) < repeats and budget_seconds > 0 and wait_for_quiet(max_other_cores, deadline=deadline):
        window()
        if time.monotonic() > deadline:
            break
    while len(quiet) + len(noisy) < repeats:  # no time left to wait for quiet: measure anyway, and say so
        window()
    used = quiet if len(quiet) >= repeats else quiet + sorted(noisy, key=lambda w: w[1])[:repeats - len(quiet)]
    seconds = [s for s, _ in used]
    median = statistics.median(seconds)
    return {"seconds": seconds, "median": median, "spread": (max(seconds) - min(seconds)) / median,
            "other_cores": [round(c, 3) for _, c in used], "quiet": len(quiet) >= repeats,
            "rejected": len(noisy) - max(0, repeats - len(quiet))}


def _rate(flops_per_window, timing, nominal_flops_per_window=None):
    nominal = flops_per_window if nominal_flops_per_window is None else nominal_flops_per_window
    return {"gflops": flops_per_window / timing["median"] / 1e9,
            "gflops_best": flops_per_window / min(timing["seconds"]) / 1e9,
            "gflops_nominal": nominal / timing["median"] / 1e9, **timing}


def _normal(shape, seed):
    """Fixed random inputs: stateless, so they also work under op determinism (--deterministic)."""
    return tf.random.stateless_normal(shape, [seed, 0])


def matmul_peak(n=4096, iterations=4, **timing_args):
    """GFLOP/s of float32 [n, n] x [n, n] matmuls."""
    # Variables: every iteration reads them again (a stateful op), so Grappler cannot
    # hoist or merge the matmuls.
    a = tf.Variable(_normal([n, n], 0))
    b = tf.Variable(_normal([n, n], 1))

    @tf.function
    def window():
        acc = tf.zeros([])
        for _ in tf.range(iterations):
            acc += tf.reduce_sum(tf.matmul(a, b)[:1, :1])
        return acc

    window().numpy()
    return {"op": "matmul", "n": n, **_rate(2 * n ** 3 * iterations, timed_windows(lambda: window().numpy(),
                                                                                 **timing_args))}


def loop_window(op, target_seconds):
    """`op()` in an in-graph loop (no Python dispatch between iterations) of about `target_seconds`
    -> (iterations per window, a function that runs one window and blocks until it is done)."""
    @tf.function(autograph=False)  # converting this source took about 0.3 s of every run's start-up probe
    def window(iterations):
        def body(i, acc):
            return i + 1, acc + tf.reshape(op(), [-1])[0]  # the result is used, so the op is not pruned

        return tf.while_loop(lambda i, _: i < iterations, body, (tf.constant(0), tf.zeros([])))[1]

    one = tf.constant(1)
    window(one).numpy()  # trace and warm up
    start = time.perf_counter()
    window(one).numpy()
    iterations = max(1, int(target_seconds / max(time.perf_counter() - start, 1e-6)))
    n = tf.constant(iterations)
    return iterations, lambda: window(n).numpy()


def _time_loop(op, target_seconds, **timing_args):
    """Time `op()` in an in-graph loop of about `target_seconds` per window -> (iterations, `timed_windows` result)."""
    iterations, run_window = loop_window(op, target_seconds)
    run_window()
    return iterations, timed_windows(run_window, **timing_args)


def conv_fwd_bwd(x, w, dy):
    """One 3x3 'SAME' conv forward and its input and filter gradients -> a scalar depending on all three.

    The gradients do not need the forward's result, so unless the result is used Grappler prunes the forward and a
    "fwd+bwd" rate would count work never done.
    """
    with tf.GradientTape() as tape:
        tape.watch([x, w])
        y = tf.nn.conv2d(x, w, 1, "SAME")
    dx, dw = tape.gradient(y, [x, w], output_gradients=dy)
    return tf.reduce_sum(y[:1, :1, :1, :1]) + tf.reduce_sum(dx[:1, :1, :1, :1]) + tf.reduce_sum(dw[:1, :1, :1, :1])


def conv_fwd_bwd_flops(batch, resolution, c_in, c_out):
    """Executed FLOPs of `conv_fwd_bwd` on a (batch, resolution, resolution, c_in) input, c_out maps."""
    return 3 * 2 * batch * flops_lib.taps_on_image(resolution, resolution, 3) ** 2 * c_in * c_out


def conv_peak(batch, resolution, c_in, c_out, target_seconds=0.5, **timing_args):
    """GFLOP/s of a 3x3 'SAME' float32 convolution forward + backward (input and filter gradients),
    executed ("gflops") and nominal ("gflops_nominal") MACs."""
    x = tf.Variable(_normal([batch, resolution, resolution, c_in], 0))
    w = tf.Variable(_normal([3, 3, c_in, c_out], 1))
    dy = _normal([batch, resolution, resolution, c_out], 2)
    flops = conv_fwd_bwd_flops(batch, resolution, c_in, c_out)
    nominal = 3 * 2 * batch * resolution * resolution * 9 * c_in * c_out

    iterations, timing = _time_loop(lambda: conv_fwd_bwd(x, w, dy), target_seconds, **timing_args)
    return {"op": "conv3x3_fwd_bwd", "shape": [batch, resolution, resolution, c_in, c_out], "iterations": iterations,
            **_rate(flops * iterations, timing, nominal * iterations)}


def measure(repeats=5, budget_seconds=300.0, conv_shapes=CONV_SHAPES):
    """Every peak measurement; `conv_peak_gflops` is the best median over the conv shapes
    (executed FLOPs), `conv_peak_gflops_nominal` the best in nominal FLOPs."""
    results = [matmul_peak(repeats=repeats, budget_seconds=budget_seconds)]
    results += [conv_peak(*shape, repeats=repeats, budget_seconds=budget_seconds) for shape in conv_shapes]
    convs = [r for r in results if r["op"] == "conv3x3_fwd_bwd"]
    return {"matmul_gflops": results[0]["gflops"], "conv_peak_gflops": max(r["gflops"] for r in convs),
            "conv_peak_gflops_nominal": max(r["gflops_nominal"] for r in convs),
            "quiet": all(r["quiet"] for r in results), "results": results,
            "threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                        "inter_op": tf.config.threading.get_inter_op_parallelism_threads()},
            "cpus": psutil.cpu_count(), "tensorflow": tf.__version__}


def print_table(peak, print_fn=print):
    print_fn(f"{'op':<18} {'shape':<26} {'GFLOP/s':>8} {'best':>8} {'nominal':>8} {'spread':>7} {'others':>7} quiet")
    for r in peak["results"]:
        shape = "x".join(map(str, r.get("shape", [r.get("n")] * 2)))
        print_fn(f"{r['op']:<18} {shape:<26} {r['gflops']:8.1f} {r['gflops_best']:8.1f} {r['gflops_nominal']:8.1f} "
              f"{r['spread']:7.1%} {max(r['other_cores']):7.2f} {'yes' if r['quiet'] else 'NO (machine busy)'}")
    print_fn(f"peak: matmul {peak['matmul_gflops']:.1f} GFLOP/s, conv3x3 fwd+bwd {peak['conv_peak_gflops']:.1f} "
          f"GFLOP/s executed ({peak['conv_peak_gflops_nominal']:.1f} nominal)"
          + ("" if peak["quiet"] else "  [NOT QUIET: other processes used > 0.15 cores in some windows]"))


def read_peak(path):
    """A peak measured before: a peak JSON, or a progan-bench JSON (which carries the peak it used).

    ConfigError if the file holds no peak with executed and nominal FLOPs told apart."""
    with open(path, encoding="utf-8") as f:
        peak = json.load(f)
    peak = peak.get("peak") or peak
    if "conv_peak_gflops_nominal" not in peak:
        raise ConfigError("{peak_json}={path} holds no peak measured with executed and nominal FLOPs told apart; "
                          "measure it again with {peak}", path=path)
    return peak


def write_json(path, result):
    """Save a benchmark result as indented JSON (nothing when `path` is empty)."""
    if path:
        with open(path, "w") as f:
            json.dump(result, f, indent=2)
