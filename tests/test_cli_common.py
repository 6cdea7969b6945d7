"""What every console script shares: --help, one-line errors, quiet output, a clear missing-TensorFlow line."""
import json
import os
import subprocess
import sys
import types

import pytest

from cli_processes import forked, tiny_export
from conftest import REPO

# script module -> a flag of its own that --help must list
SCRIPTS = {"train": "--run_dir", "prepare": "--source", "export": "--export_base", "generate": "--seeds",
           "evaluate": "--metrics", "serve": "--model_base_path", "bench": "--bench_resolutions"}


def _quiet_env():
    return {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


@pytest.fixture(scope="module")
def helps():
    """progan-train --help as a process of its own, whose TensorFlow start-up must print nothing;
    the others' as forks of one process (the start-up is the package's, the same for every script)."""
    train = subprocess.run([sys.executable, "-m", "progan_tf.cli.train", "--help"], cwd=REPO, env=_quiet_env(),
                           capture_output=True, text=True, timeout=180)
    return {"train": (train.returncode, train.stdout, train.stderr),
            **forked({name: (name, ["--help"]) for name in SCRIPTS if name != "train"}, REPO)}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_help_shows_the_docstring_and_the_scripts_own_flags_and_exits_0(helps, name):
    code, out, err = helps[name]
    assert code == 0, err[-2000:]
    assert out.startswith(f"progan-{'eval' if name == 'evaluate' else name}:"), out[:200]
    assert f"  {SCRIPTS[name]}:" in out and "(default:" in out
    assert "--helpfull" in out.splitlines()[-1]
    assert "--tpu" not in out and "--alsologtostderr" not in out  # no absl or TensorFlow flags
    assert err == "", err  # nothing from TensorFlow's start-up


def test_help_into_a_closed_pipe_exits_0_without_a_traceback():
    # `progan-train --help | head -3`: the reader leaves before the help is written.
    proc = subprocess.Popen([sys.executable, "-m", "progan_tf.cli.train", "--help"], cwd=REPO, env=_quiet_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()
    assert proc.wait(timeout=180) == 0
    assert proc.stderr.read() == ""


def test_train_help_groups_the_config_fields(helps):
    out = helps["train"][1]
    groups = [line[:-1] for line in out.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert groups[-4:] == ["Data and devices", "Network", "Schedule", "Training"]
    assert "--fmap_base: Feature-map count numerator" in out or "--fmap_base: feature-map count numerator" in out


def test_import_without_tensorflow_names_the_extras():
    code = "import sys; sys.modules['tensorflow'] = None\nimport progan_tf"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: progan_tf needs TensorFlow") and "[cpu]" in last and "[gpu]" in last


@pytest.fixture(scope="module")
def misuses(tmp_path_factory):
    """progan-generate, progan-export and progan-serve, each given one bad flag."""
    root = tmp_path_factory.mktemp("cli")
    _, base = tiny_export(root)
    return forked({"bad_generate": ("generate", [f"--model={base}", "--frames_per_seed=0"]),
                   "bad_export": ("export", [f"--run_dir={root / 'missing'}"]),
                   "bad_serve": ("serve", [f"--model_base_path={base}", "--port=eighty"])}, root)


@pytest.mark.parametrize("name, flag", [("bad_generate", "--frames_per_seed"), ("bad_export", "--run_dir"),
                                        ("bad_serve", "--port")])
def test_misuse_exits_2_with_one_line_naming_the_flag(misuses, name, flag):
    code, out, err = misuses[name]
    # TensorFlow's C++ start-up lines ignore TF_CPP_MIN_LOG_LEVEL; ours is the one "progan-" line.
    ours = [line for line in err.splitlines() if line.startswith("progan-")]
    assert code == 2 and len(ours) == 1 and flag in ours[0], err


def test_check_at_least_names_the_first_flag_below_its_minimum():
    from progan_tf.cli import common
    f = types.SimpleNamespace(steps=1, wait=0.5, repeats=0)
    common.check_at_least(f, 1, "steps")  # at the minimum: accepted
    common.check_at_least(f, 0, "wait", "repeats")
    with pytest.raises(common.UsageError, match=r"^--repeats=0 must be >= 1$"):
        common.check_at_least(f, 1, "steps", "repeats")


def test_a_level_set_by_the_parent_and_the_worker_processes_stay_quiet(tmp_path):
    """TF_CPP_MIN_LOG_LEVEL=2 inherited (as from pytest or a script) and a pool of 2 workers: no start-up lines."""
    from PIL import Image
    import numpy as np
    (tmp_path / "images").mkdir()
    for i in range(4):
        Image.fromarray(np.full((8, 8, 3), 60 * i, np.uint8)).save(tmp_path / "images" / f"{i}.png")
    done = subprocess.run([sys.executable, "-m", "progan_tf.cli.prepare", f"--source={tmp_path / 'images'}",
                           f"--out_dir={tmp_path / 'ds'}", "--max_resolution=8", "--workers=2", "--progress=false"],
                          env={**_quiet_env(), "TF_CPP_MIN_LOG_LEVEL": "2"}, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.startswith("prepared 4 images")


def _run_app_in_fork(tmp_path, tf_config):
    """common.run_app of a `main` that writes unterminated output, in a fork; (exit code, stdout, stderr) where stdout
    ends with "returned" if run_app returned to its caller (the interpreter's teardown would follow)."""
    from progan_tf.cli import common

    def main(_):
        print("finished", end="")
        sys.stderr.write("last words")

    out, err = tmp_path / "out", tmp_path / "err"
    pid = os.fork()
    if pid == 0:
        try:
            for fd, path in ((1, out), (2, err)):
                os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
            sys.stdout, sys.stderr = open(1, "w", closefd=False), open(2, "w", closefd=False)
            os.environ.pop("TF_CONFIG", None)
            if tf_config:
                os.environ["TF_CONFIG"] = json.dumps(tf_config)
            sys.argv = ["progan-test"]
            common.run_app("progan-test", "doc", main)
        except SystemExit:
            print(" returned", end="")
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(3)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    return code, out.read_text(), err.read_text()


def test_a_multi_worker_process_skips_the_teardown_after_writing_everything(tmp_path):
    """Two workers: run_app ends the process itself (exit 0, nothing left unflushed), so TensorFlow's gRPC threads
    cannot abort the interpreter's teardown; a one-process run returns to its caller as usual."""
    workers = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 0}}
    assert _run_app_in_fork(tmp_path, workers) == (0, "finished", "last words")
    one = {"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 0}}
    assert _run_app_in_fork(tmp_path, one) == (3, "finished returned", "last words")
    assert _run_app_in_fork(tmp_path, None) == (3, "finished returned", "last words")
