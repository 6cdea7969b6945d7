"""Quality on real images: the paper's Table 1 ablation at CPU scale, on held-out emoji.

Trains each row (the full method and one ablation switch per row) with the same image
budget and seed, one run at a time in a fresh process, on Debian's Noto Color Emoji
(`progan-prepare --source=emoji:train`, datasets/emoji.md). Every --eval_kimg it scores
Gs at the final resolution (lower stages upsampled, nearest) against the held-out split
(`emoji:test`, never trained on): SWD per pyramid level and average, and at the end
MS-SSIM of generated pairs. The floor is the SWD between the held-out images and as many
training images. Evaluation time is not counted as training time.

Writes benchmarks/quality/ (--out): quality.md (the table), quality.json, results/<row>_seed<s>.json (each
finished run's scores; kept in git, so a finished run is never trained again, even on a new machine),
grids/<row>_seed<s>.png (the last sample grid of each run) and swd_vs_time.png. The runs themselves go to
runs/ (not in git); a run stopped part-way (Ctrl-C, SIGTERM, a kill) resumes from its newest checkpoint, with
its evaluations so far, when the same command runs again. The headline rows' seeds are interleaved, so an
interrupted table has both rows. A row's kept results for seeds not asked for join the table too: it shows every
seed measured.

  python benchmarks/quality.py                                  # the whole table: hours, one run at a time
  python benchmarks/quality.py --rows=full,nogrowing --seeds=0,1,2
  python benchmarks/quality.py --rows=full,nogrowing --out=benchmarks/quality/kimg100 \
      --base_extra=--total_kimg=100,--fade_kimg=5,--stable_kimg=5,--g_ema_kimg=5
  python benchmarks/quality.py --rows=preset --preset=configs/cpu_quality.flags --out=benchmarks/quality/preset
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
from absl import app, flags
from PIL import Image, ImageDraw

from progan_tf import runs
from progan_tf.cli import options as train_options  # progan-train's flags, used by the worker

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The table's common configuration: 32x32 emoji, 40 k images, 2 k per fade and per stable phase, so that the
# last stable phase gets the rest (28 k): the proportions of the official code's CIFAR-10 schedule (600 k per
# phase, 12,000 k in all), where three quarters of the images go to the final resolution. The earlier table
# (5 k per phase, only 15 k images at 32x32) is kept in benchmarks/quality/phases5k/.
BASE = ["--resolution=32", "--latent_size=64", "--fmap_base=512", "--fmap_max=64",
        "--batch_sizes=4:32,8:32,16:32,32:32", "--fade_kimg=2", "--stable_kimg=2", "--total_kimg=40",
        "--g_ema_kimg=2", "--g_ema_rampup=0.05", "--tick_kimg=4", "--checkpoint_kimg=1000", "--grid_size=64"]
# Each ablation row adds its switch to BASE (later flags override earlier ones).
ROWS = {"full": [], "nogrowing": ["--nogrowing"], "nombstd": ["--nombstd"], "nowscale": ["--nowscale"],
        "nopixelnorm": ["--nopixelnorm"], "noema": ["--noema"], "lsgan": ["--loss=lsgan"]}
DEFAULT_ROWS = list(ROWS)
HEADLINE = ("full", "nogrowing")

flags.DEFINE_list("rows", DEFAULT_ROWS, f"Rows to train: {', '.join(ROWS)}, or preset (with --preset).")
flags.DEFINE_list("seeds", ["0"], "Seeds of every row.")
flags.DEFINE_list("seeds_headline", ["0", "1", "2"], "Seeds of the rows full and nogrowing.")
flags.DEFINE_list("base_extra", [], "Flags appended to the table's common configuration, e.g. a longer budget: "
                  "--base_extra=--total_kimg=100,--fade_kimg=5,--stable_kimg=5,--g_ema_kimg=5 (use its own --out).")
flags.DEFINE_string("preset", "", "A flagfile to train as the row 'preset' instead of the table's configuration.")
flags.DEFINE_string("out", os.path.join(REPO, "benchmarks", "quality"), "Output directory.")
flags.DEFINE_string("data", os.path.join(REPO, "datasets", "emoji"), "Prepared train split (made if missing).")
flags.DEFINE_string("heldout", os.path.join(REPO, "datasets", "emoji_test"), "Prepared test split (made if missing).")
flags.DEFINE_float("eval_kimg", 4, "Thousands of images between evaluations.")
flags.DEFINE_string("worker", "", "Internal: train one run (row:seed) and write its JSON.")
FLAGS = flags.FLAGS


def prepare(spec, out_dir, resolution):
    if not os.path.isdir(out_dir):
        subprocess.run([sys.executable, "-m", "progan_tf.cli.prepare", f"--source={spec}", f"--out_dir={out_dir}",
                        f"--max_resolution={resolution}", "--progress=false"], check=True)


def heldout_images(resolution):
    from progan_tf.data.pipeline import PreparedDataset
    return PreparedDataset(FLAGS.heldout).level(resolution)


def score(images, reals, seed=0):
    from progan_tf.metrics import swd
    return swd.sliced_wasserstein_distance(reals, images, seed=seed)


class Evaluator:
    """on_tick hook: SWD of Gs at the final resolution every eval_kimg; its own time is not training time.

    Each point is also appended to `points_path`, so that a stopped run resumes its curve: the points up to
    `resumed_images` (the checkpoint training resumes from) are kept and their times continue. The training
    between the last kept point and that checkpoint (less than one evaluation interval) is not counted."""

    def __init__(self, network, reals, every_kimg, points_path, resumed_images=0):
        self.network, self.reals, self.every = network, reals, int(every_kimg * 1000)
        self.latents = np.random.default_rng(123).standard_normal((len(reals), network.latent_size)).astype(np.float32)
        self.points_path = points_path
        self.points = [p for p in read_points(points_path) if p["kimg"] * 1000 <= resumed_images]
        last = self.points[-1] if self.points else {"kimg": 0, "train_seconds": 0.0, "cpu_seconds": 0.0}
        self.next = round(last["kimg"] * 1000) + self.every if self.points else 0
        if os.path.exists(points_path):  # a resumed run (a new one has no directory yet)
            with open(points_path, "w", encoding="utf-8") as f:
                f.writelines(json.dumps(p) + "\n" for p in self.points)
        # Wall time, and CPU time of the process (robust to other load on the machine), both without evaluations.
        self.start, self.start_cpu = time.time() - last["train_seconds"], time.process_time() - last["cpu_seconds"]
        self.excluded, self.excluded_cpu = 0.0, 0.0

    def generate(self, gs):
        from progan_tf.images import to_uint8
        images = np.concatenate([gs(self.latents[i:i + 64], training=False).numpy()
                                 for i in range(0, len(self.latents), 64)])
        factor = self.network.resolution // images.shape[1]
        return to_uint8(np.repeat(np.repeat(images, factor, axis=1), factor, axis=2))

    def __call__(self, models, images_seen, final=False):
        if images_seen < self.next and not (final and images_seen > self.points[-1]["kimg"] * 1000):
            return
        began, began_cpu = time.time(), time.process_time()
        result = score(self.generate(models.Gs), self.reals)
        self.points.append({"kimg": images_seen / 1000, "train_seconds": began - self.start - self.excluded,
                            "cpu_seconds": began_cpu - self.start_cpu - self.excluded_cpu,
                            "resolution": models.phase.resolution, **result})
        with open(self.points_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(self.points[-1]) + "\n")
        self.next = images_seen + self.every
        self.excluded += time.time() - began
        self.excluded_cpu += time.process_time() - began_cpu


def read_points(path):
    """The evaluations a run wrote so far (none for a new run); a line cut short by a kill is dropped."""
    points = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    points.append(json.loads(line))
                except json.JSONDecodeError:
                    break
    return points


def run_worker(spec):
    """Train one row:seed with the progan-train flags on the command line; write its JSON."""
    from progan_tf.data.pipeline import open_dataset
    from progan_tf.metrics import ms_ssim
    from progan_tf.training import trainer as trainer_lib
    row, seed = spec.split(":")
    network, schedule, train = train_options.options_from_flags(FLAGS)
    reals = heldout_images(network.resolution)
    state = runs.read_state(train.run_dir)
    evaluator = Evaluator(network, reals, FLAGS.eval_kimg, os.path.join(train.run_dir, "quality_points.jsonl"),
                          state["images_seen"] if state else 0)
    run = trainer_lib.Trainer(network, schedule, train, open_dataset(FLAGS.data_dir, network.num_channels),
                              print_fn=lambda line: print(f"[{spec}] {line}", flush=True), on_tick=evaluator)
    run.train()
    if run.stop_requested:  # Ctrl-C or SIGTERM: a shorter run is no row of the table
        sys.exit(f"quality.py: {spec} stopped before the end of its schedule; run the same command to resume it")
    evaluator(run.models, run.result["images_seen"], final=True)  # ticks need not fall on the last image
    fakes = evaluator.generate(run.models.Gs)
    rng = np.random.default_rng(0)
    pairs = rng.integers(len(fakes), size=(2, 2000))
    result = {"row": row, "seed": int(seed), "cores": len(os.sched_getaffinity(0)), "points": evaluator.points,
              "final": evaluator.points[-1],
              "train_seconds": evaluator.points[-1]["train_seconds"],
              "cpu_seconds": evaluator.points[-1]["cpu_seconds"],
              "MSSSIM": float(np.mean(ms_ssim.ms_ssim_pairs(fakes[pairs[0]], fakes[pairs[1]]))),
              "MSSSIM_reals": float(np.mean(ms_ssim.ms_ssim_pairs(reals[pairs[0] % len(reals)],
                                                                  reals[pairs[1] % len(reals)])))}
    with open(os.path.join(train.run_dir, "quality.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)


def cpu_model():
    """The CPU's name, family and model (a virtual machine may name only the vendor): wall times compare only
    within one kind of machine."""
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        fields = dict(line.split(":", 1) for line in f.read().split("\n\n")[0].splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    name, family, model = (fields.get(key, "?") for key in ("model name", "cpu family", "model"))
    return f"{name} (family {family}, model {model})"


def kept_path(row, seed):
    """Where a finished run's scores are kept (in git)."""
    return os.path.join(FLAGS.out, "results", f"{row}_seed{seed}.json")


def train_row(row, seed):
    """One run in a fresh process; returns its result dict (reused if the run finished before)."""
    run_dir = os.path.join(FLAGS.out, "runs", f"{row}_seed{seed}")
    kept = kept_path(row, seed)
    if os.path.exists(kept):
        with open(kept, encoding="utf-8") as f:
            return json.load(f)
    path = os.path.join(run_dir, "quality.json")
    if not os.path.exists(path):
        resuming = os.path.isdir(run_dir) and runs.read_state(run_dir) is not None
        if not resuming:  # nothing to resume: start over
            shutil.rmtree(run_dir, ignore_errors=True)
        options = ([f"--flagfile={FLAGS.preset}"] if row == "preset" else BASE + FLAGS.base_extra + ROWS[row])
        if "--noema" in options:  # no average to set: progan-train refuses --g_ema_* with --noema
            options = [o for o in options if not o.startswith("--g_ema")]
        command = [sys.executable, os.path.abspath(__file__), f"--worker={row}:{seed}", *options, f"--seed={seed}",
                   f"--run_dir={run_dir}", f"--data_dir={FLAGS.data}", f"--heldout={FLAGS.heldout}",
                   f"--eval_kimg={FLAGS.eval_kimg}"]
        with open(os.path.join(FLAGS.out, "runs", f"{row}_seed{seed}.log"), "a" if resuming else "w") as log:
            code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode
        if code:  # stopped, killed or failed: its log says which; a stopped run resumes
            sys.exit(f"quality.py: {row}:{seed} ended with exit code {code}; its log is {log.name}. "
                     "Run the same command to resume it")
    with open(path, encoding="utf-8") as f:
        result = json.load(f)
    result.setdefault("cpu", cpu_model())  # the worker ran here, under this process
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    grids = sorted(n for n in os.listdir(os.path.join(run_dir, "samples")) if n.startswith("fakes"))
    os.makedirs(os.path.join(FLAGS.out, "grids"), exist_ok=True)
    shutil.copy(os.path.join(run_dir, "samples", grids[-1]), os.path.join(FLAGS.out, "grids", f"{row}_seed{seed}.png"))
    os.makedirs(os.path.dirname(kept), exist_ok=True)
    shutil.copy(path, kept)
    return result


def kept_seeds(row):
    """Seeds of the row whose results are kept in --out/results."""
    pattern = re.compile(rf"{re.escape(row)}_seed(\d+)\.json")
    matches = (pattern.fullmatch(os.path.basename(path)) for path in glob.glob(kept_path(row, "*")))
    return sorted(int(m.group(1)) for m in matches if m)


def plan(rows):
    """(row, seed) in training order: the headline rows' seeds alternate, then the other rows. Seeds kept from
    earlier runs join their rows (nothing is trained for them), so the table shows every seed measured."""
    headline = [r for r in rows if r in HEADLINE]
    order = [(row, int(seed)) for seed in FLAGS.seeds_headline for row in headline]
    order += [(row, int(seed)) for row in rows if row not in HEADLINE for seed in FLAGS.seeds]
    return order + [(row, seed) for row in rows for seed in kept_seeds(row) if (row, seed) not in order]


COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127)]


def plot(results, floor, path, size=(900, 520), margin=60):
    """SWD (average, x1e3) against training minutes, one colour per row, one line per seed."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    points = [(p["train_seconds"] / 60, p["SWDx1e3_avg"]) for r in results for p in r["points"]]
    x_max, y_max = max(x for x, _ in points) * 1.05, max(y for _, y in points) * 1.05
    w, h = size[0] - 2 * margin, size[1] - 2 * margin
    to_px = lambda x, y: (margin + x / x_max * w, size[1] - margin - y / y_max * h)
    draw.rectangle([margin, margin, margin + w, margin + h], outline="black")
    for i in range(6):
        x, y = x_max * i / 5, y_max * i / 5
        draw.text((to_px(x, 0)[0] - 10, size[1] - margin + 8), f"{x:.0f}", fill="black")
        draw.text((8, to_px(0, y)[1] - 6), f"{y:.0f}", fill="black")
    draw.line([to_px(0, floor), to_px(x_max, floor)], fill=(0, 0, 0), width=1)
    draw.text((to_px(0, floor)[0] + 4, to_px(0, floor)[1] - 14), "real vs real", fill="black")
    rows = list(dict.fromkeys(r["row"] for r in results))
    for r in results:
        colour = COLOURS[rows.index(r["row"]) % len(COLOURS)]
        line = [to_px(p["train_seconds"] / 60, p["SWDx1e3_avg"]) for p in r["points"]]
        draw.line(line, fill=colour, width=2)
    for i, row in enumerate(rows):
        draw.text((size[0] - margin - 120, margin + 10 + 16 * i), row, fill=COLOURS[i % len(COLOURS)])
    cores = sorted({r.get("cores", 2) for r in results})
    draw.text((size[0] // 2 - 80, size[1] - 24), f"training minutes ({'/'.join(map(str, cores))} cores)", fill="black")
    draw.text((8, 8), "SWD x1e3 (average of levels), held-out emoji", fill="black")
    image.save(path)


def table(results, floor):
    by_row = {}
    for r in results:
        by_row.setdefault(r["row"], []).append(r)
    levels = [k for k in results[0]["final"] if k.startswith("SWDx1e3_") and k != "SWDx1e3_avg"]
    lines = ["| row | seeds | " + " | ".join(levels) + " | SWDx1e3_avg | MS-SSIM | train min | CPU min |",
             "|---|---|" + "---|" * (len(levels) + 4)]
    for row, row_runs in by_row.items():
        cell = lambda key: _mean_std([run["final"][key] for run in row_runs])
        lines.append(f"| {row} | {len(row_runs)} | " + " | ".join(cell(k) for k in levels) +
                     f" | {cell('SWDx1e3_avg')} | "
                     f"{np.mean([run['MSSSIM'] for run in row_runs]):.3f} | "
                     f"{np.mean([run['train_seconds'] for run in row_runs]) / 60:.1f} | "
                     f"{np.mean([run['cpu_seconds'] for run in row_runs]) / 60:.1f} |")
    lines.append("| real vs real (floor) | - | " + " | ".join(f"{floor[k]:.2f}" for k in levels) +
                 f" | {floor['SWDx1e3_avg']:.2f} | {results[0]['MSSSIM_reals']:.3f} | - | - |")
    return "\n".join(lines)


def _mean_std(values):
    return f"{np.mean(values):.2f}" + (f" ± {np.std(values, ddof=1):.2f}" if len(values) > 1 else "")


def main(argv):
    del argv
    if FLAGS.worker:
        return run_worker(FLAGS.worker)
    unknown = [r for r in FLAGS.rows if r not in ROWS and r != "preset"]
    if unknown or ("preset" in FLAGS.rows and not FLAGS.preset):
        sys.exit(f"quality.py: error: rows {unknown or ['preset']} need to be among {list(ROWS)} (preset needs "
                 f"--preset=FLAGFILE)")
    os.makedirs(os.path.join(FLAGS.out, "runs"), exist_ok=True)
    prepare("emoji:train", FLAGS.data, 32)
    prepare("emoji:test", FLAGS.heldout, 32)
    results = []
    for row, seed in plan(FLAGS.rows):
        began = time.time()
        results.append(train_row(row, seed))
        print(f"{row} seed {seed}: SWD x1e3 {results[-1]['final']['SWDx1e3_avg']:.2f} "
              f"({(time.time() - began) / 60:.1f} min with evaluation)", flush=True)
    results.sort(key=lambda r: (FLAGS.rows.index(r["row"]), r["seed"]))  # table rows in --rows order
    from progan_tf.data.pipeline import PreparedDataset
    resolution = results[0]["final"]["resolution"]  # the runs' (--base_extra may change it; --data must reach it)
    reals = heldout_images(resolution)
    train_images = PreparedDataset(FLAGS.data).level(resolution)
    floor = score(train_images[np.random.default_rng(0).choice(len(train_images), len(reals), replace=False)], reals)
    markdown = table(results, floor)
    extra = f" --base_extra={','.join(FLAGS.base_extra)}" if FLAGS.base_extra else ""
    with open(os.path.join(FLAGS.out, "quality.md"), "w", encoding="utf-8") as f:
        f.write(f"# Quality on held-out emoji ({len(reals)} test images, {resolution}x{resolution})\n\n"
                f"`python benchmarks/quality.py --rows={','.join(FLAGS.rows)}{extra}`\n\n{markdown}\n\n"
                "![SWD against training time](swd_vs_time.png)\n")
    with open(os.path.join(FLAGS.out, "quality.json"), "w", encoding="utf-8") as f:
        json.dump({"floor": floor, "runs": results}, f, indent=2)
    plot(results, floor["SWDx1e3_avg"], os.path.join(FLAGS.out, "swd_vs_time.png"))
    print(markdown)


if __name__ == "__main__":
    app.run(main)
