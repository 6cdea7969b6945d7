"""progan-bench as a process of its own (a fork, cli_processes.spawn): it times the steps of a training
configuration, writes JSON, and no run."""
import json
import os

from cli_processes import spawn
from test_cli_train import TINY


def test_progan_bench_writes_json_and_no_run(tmp_path):
    out_json = tmp_path / "bench.json"
    config = [flag for flag in TINY if not flag.startswith("--synthetic_images")]
    proc = spawn("bench", [*config, f"--run_dir={tmp_path / 'run'}", "--bench_resolutions=8", "--bench_steps=2",
                           "--bench_repeats=1", "--bench_wait=0", f"--json={out_json}"], tmp_path)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert "img/s" in out and "GFLOP/s" in out
    result = json.loads(out_json.read_text())
    assert [r["resolution"] for r in result["rows"]] == [8] and result["rows"][0]["images_per_second"] > 0
    assert not os.path.exists(tmp_path / "run"), "progan-bench must not create the run directory"
