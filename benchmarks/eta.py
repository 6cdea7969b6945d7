"""How right is progan-train's ETA? Trains a flagfile's run and compares each tick's ETA with the time really left.

  python benchmarks/eta.py                                   # the demo, 10-12 minutes on 2 cores
  python benchmarks/eta.py --flagfile_run=configs/demo.flags --resume_at=2

Each progress line is timestamped as it arrives; when the run ends, the real time left at a
line is the end time minus the line's time. With --resume_at=N the run is stopped (SIGINT)
after its N-th tick and started again, to show the ETA right after a resume. Prints a
Markdown table: tick, kimg, phase, ETA, real, error.
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

from absl import app, flags
from PIL import Image

flags.DEFINE_string("flagfile_run", "configs/demo.flags", "The run's flagfile.")
flags.DEFINE_integer("resume_at", 0, "Stop after this tick and resume (0: never).")
flags.DEFINE_string("run_dir", "", "Keep the run here (default: a temporary directory, deleted).")
flags.DEFINE_string("grids_out", "", "Also write the last Gs grid of each resolution side by side to this PNG.")
FLAGS = flags.FLAGS

LINE = re.compile(r"\| (\d+x\d+ \w+) .*\| kimg ([\d.]+)/.*\| ETA (?:(\d+)h)?(\d+)m(\d+)s")


def _train(run_dir, stop_after=0):
    """Run progan-train; returns [(time, line)] of its stdout lines."""
    command = [sys.executable, "-m", "progan_tf.cli.train", f"--flagfile={FLAGS.flagfile_run}", f"--run_dir={run_dir}"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, bufsize=1)
    lines, ticks = [], 0
    for line in proc.stdout:
        lines.append((time.time(), line.rstrip()))
        print(line.rstrip(), flush=True)
        ticks += bool(LINE.search(line))
        if stop_after and ticks == stop_after:
            proc.send_signal(signal.SIGINT)
            stop_after = 0
    proc.wait()
    return lines


def grids_per_resolution(run_dir, path, size=256):
    """The last stable-phase sample grid of each resolution, scaled to `size` px, side by side."""
    with open(os.path.join(run_dir, "metrics.jsonl"), encoding="utf-8") as f:
        ticks = [t for t in map(json.loads, f) if t.get("phase") == "stable"]
    last = {t["resolution"]: round(t["kimg"] * 1000) for t in ticks}
    grids = [Image.open(os.path.join(run_dir, "samples", f"fakes_{images:010d}.png")).convert("RGB")
             .resize((size, size), Image.NEAREST) for _, images in sorted(last.items())]
    sheet = Image.new("RGB", (len(grids) * (size + 8) - 8, size), "white")
    for i, grid in enumerate(grids):
        sheet.paste(grid, (i * (size + 8), 0))
    sheet.save(path)


def main(argv):
    del argv
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = FLAGS.run_dir or os.path.join(tmp, "run")
        lines = _train(run_dir, FLAGS.resume_at) + (_train(run_dir) if FLAGS.resume_at else [])
        if FLAGS.grids_out:
            grids_per_resolution(run_dir, FLAGS.grids_out)
    end = lines[-1][0]
    rows = ["| tick | kimg | phase | ETA | real | error |", "|---|---|---|---|---|---|"]
    for tick, (when, line) in enumerate((t, l) for t, l in lines if LINE.search(l)):
        phase, kimg, h, m, s = LINE.search(line).groups()
        eta, real = int(h or 0) * 3600 + int(m) * 60 + int(s), end - when
        error = f"{100 * (eta - real) / real:+.0f} %" if real > 30 else "-"
        rows.append(f"| {tick + 1} | {kimg} | {phase} | {eta / 60:.1f} min | {real / 60:.1f} min | {error} |")
    print("\n".join(rows))


if __name__ == "__main__":
    app.run(main)
