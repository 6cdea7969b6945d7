"""What oneDNN ran, and at what rate: a summary of an `ONEDNN_VERBOSE=1` log.

  ONEDNN_VERBOSE=1 progan-bench --reference --bench_resolutions=8 > 8x8.log 2>&1
  python benchmarks/onednn_log.py 8x8.log

TensorFlow's CPU convolutions, matmuls and pools are oneDNN primitives; with
ONEDNN_VERBOSE=1 oneDNN prints one line per primitive it executes, with its
implementation, its problem (shapes, strides, padding) and its time. This groups
those lines by primitive and problem and prints calls, time, share of all primitive
time and, for convolutions and matmuls, the executed rate in GFLOP/s (taps over zero
padding not counted, as in `progan_tf.bench.flops`). Weight reorders (a convolution's
weights copied from TensorFlow's HWIO layout into the blocked layout its kernel
reads, on every call) show up as `reorder` rows. Times are the primitives' own;
printing every call slows a run down, so compare rows with each other, not with
the throughput table.
"""
import argparse
import collections
import re

from progan_tf.bench import flops


def parse(lines):
    """The executed primitives of a oneDNN v3 verbose log.

    Returns:
      list of dicts: kind ('convolution', 'reorder', ...), impl, prop (forward_training,
      backward_data, ...), layouts (the memory descriptors), problem, ms.
    """
    records = []
    for line in lines:
        if not line.startswith("onednn_verbose,") or ",primitive,exec," not in line:
            continue
        fields = line.rstrip("\n").split(",")
        start = fields.index("exec") + 2  # after "exec" and the engine ("cpu")
        try:
            ms = float(fields[-1])
        except ValueError:
            continue
        records.append({"kind": fields[start], "impl": fields[start + 1], "prop": fields[start + 2],
                        "layouts": fields[start + 3], "problem": fields[-2], "ms": ms})
    return records


def problem_flops(kind, problem):
    """Executed FLOPs of one call of a convolution, inner product or matmul; None for other primitives.

    `problem` is oneDNN's description, e.g. 'mb32_ic128oc128_ih8oh8kh3sh1dh0ph1_iw8ow8kw3sw1dw0pw1'
    (a convolution), 'mb32ic2048oc128' (an inner product) or '128x32:32x2048' (a matmul).
    """
    d = {k: int(v) for k, v in re.findall(r"([a-z]+)(\d+)", problem)}  # {'mb': 32, 'ic': 128, ...}
    if kind == "convolution":
        if "id" in d or d.get("dh", 0) or d.get("dw", 0):
            return None  # 3-D or dilated: not counted
        taps = (flops.taps_on_image(d["ih"], d["oh"], d["kh"], d["sh"], d["ph"])
                * flops.taps_on_image(d["iw"], d["ow"], d["kw"], d["sw"], d["pw"]))
        return 2 * d["mb"] * (d["ic"] // d.get("g", 1)) * d["oc"] * taps
    if kind == "inner_product":
        return 2 * d["mb"] * d["ic"] * d["oc"] * d.get("ih", 1) * d.get("iw", 1)
    if kind in ("matmul", "gemm_api") and re.fullmatch(r"\d+x\d+:\d+x\d+", problem):
        (m, k), (_, n) = [map(int, side.split("x")) for side in problem.split(":")]
        return 2 * m * k * n
    return None


def summarize(records):
    """Rows per (kind, prop, problem, layouts for reorders), most time first.

    Returns:
      list of dicts: kind, prop, problem, impls, calls, ms, ms_per_call, share (of all
      primitive time), gflops (executed, None where not counted).
    """
    groups = collections.defaultdict(list)
    for r in records:
        groups[(r["kind"], r["prop"], r["problem"], r["layouts"] if r["kind"] == "reorder" else "")].append(r)
    total = sum(r["ms"] for r in records) or 1.0
    rows = []
    for (kind, prop, problem, layouts), group in groups.items():
        ms = sum(r["ms"] for r in group)
        per_call = problem_flops(kind, problem)
        rows.append({"kind": kind, "prop": prop, "problem": problem, "layouts": layouts,
                     "impls": sorted({r["impl"] for r in group}), "calls": len(group), "ms": ms,
                     "ms_per_call": ms / len(group), "share": ms / total,
                     "gflops": per_call * len(group) / ms / 1e6 if per_call is not None and ms > 0 else None})
    return sorted(rows, key=lambda row: -row["ms"])


def print_summary(rows, top=30, print_fn=print):
    print_fn(f"{'ms':>9} {'share':>6} {'calls':>6} {'ms/call':>8} {'GFLOP/s':>8}  primitive")
    for row in rows[:top]:
        rate = f"{row['gflops']:8.1f}" if row["gflops"] is not None else f"{'-':>8}"
        what = row["layouts"] if row["kind"] == "reorder" else f"{row['prop']} {','.join(row['impls'])}"
        print_fn(f"{row['ms']:9.1f} {row['share']:6.1%} {row['calls']:6d} {row['ms_per_call']:8.3f} {rate}  "
                 f"{row['kind']} {what} {row['problem']}")
    by_kind = collections.Counter()
    for row in rows:
        by_kind[row["kind"]] += row["share"]
    print_fn("share by primitive: " + ", ".join(f"{k} {v:.1%}" for k, v in by_kind.most_common()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("log", help="a file of ONEDNN_VERBOSE=1 output")
    parser.add_argument("--top", type=int, default=30, help="rows to print")
    args = parser.parse_args()
    try:
        with open(args.log) as f:
            records = parse(f)
    except OSError as e:
        parser.error(f"cannot read {args.log}: {e.strerror}")
    if not records:
        parser.error(f"{args.log} has no oneDNN 'primitive,exec' lines: run the program with ONEDNN_VERBOSE=1 "
                     "and keep its standard output")
    print_summary(summarize(records), args.top)


if __name__ == "__main__":
    main()
