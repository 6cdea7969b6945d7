"""The command-line tools: progan-generate, progan-export and progan-serve, as subprocesses.

Every process is started by one fixture and runs concurrently with the others, so the
module pays TensorFlow's start-up time about once.
"""
import base64
import io
import json
import os
import subprocess
import sys
import urllib.request

import numpy as np
import pytest
from PIL import Image

from progan_tf import export
from test_export import TINY, make_run, tiny_generator

NO_PROXY_ENV = {**{k: v for k, v in os.environ.items() if "proxy" not in k.lower()}, "TF_CPP_MIN_LOG_LEVEL": "3"}


def cli(tool, *flags, cwd=None):
    return subprocess.Popen([sys.executable, "-m", f"progan_tf.cli.{tool}", *flags], cwd=cwd, env=NO_PROXY_ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result(process, timeout=180):
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    gs = tiny_generator(seed=3)
    run_dir = make_run(root / "run", gs)
    base = root / "models" / "tiny"
    export.export_generator(gs, TINY, base / "1", {"images_seen": 5000})
    processes = {
        "from_export": cli("generate", f"--model={base}", "--seeds=1-3", "--gif", "--frames_per_seed=2",
                           f"--out_dir={root / 'from_export'}"),
        "from_run": cli("generate", f"--model={run_dir}", "--seeds=1,2", "--nogrid", f"--out_dir={root / 'from_run'}"),
        "export": cli("export", f"--run_dir={run_dir}", f"--export_base={root / 'exported'}"),
        "serve": cli("serve", f"--model_base_path={base}", "--port=0", "--file_system_poll_wait_seconds=0"),
        "bad_generate": cli("generate", f"--model={base}", "--frames_per_seed=0"),
        "bad_export": cli("export", f"--run_dir={root / 'missing'}"),
        "bad_serve": cli("serve", f"--model_base_path={base}", "--port=eighty"),
    }
    # The server runs until told to stop: the test reads its address and talks to it.
    serve = processes.pop("serve")
    done = {name: result(process) for name, process in processes.items()}
    yield {"root": root, "base": base, "gs": gs, "done": done, "serve": serve}
    if serve.poll() is None:
        serve.terminate()
    serve.communicate(timeout=30)


def expected_pngs(base, seeds):
    """Pixels of the exported model's generate_png signature for `seeds`."""
    import tensorflow as tf
    pngs = tf.saved_model.load(str(base / "1")).signatures["generate_png"](seeds=tf.constant(seeds, tf.int64))
    return [tf.io.decode_png(png).numpy() for png in pngs["png_bytes"]]


def test_generate_from_an_export_writes_pngs_grid_and_gif(runs):
    code, out, err = runs["done"]["from_export"]
    assert code == 0, err
    out_dir = runs["root"] / "from_export"
    assert sorted(os.listdir(out_dir)) == ["grid.png", "interpolation.gif", "seed0001.png", "seed0002.png",
                                           "seed0003.png"]
    for seed, pixels in zip([1, 2, 3], expected_pngs(runs["base"], [1, 2, 3])):
        np.testing.assert_allclose(np.asarray(Image.open(out_dir / f"seed{seed:04d}.png")), pixels, atol=1)
    gif = Image.open(out_dir / "interpolation.gif")
    assert gif.n_frames == 6 and gif.size == (16, 16)
    assert Image.open(out_dir / "grid.png").size[0] >= 2 * 16


def test_generate_from_a_run_matches_its_export_seed_for_seed(runs):
    code, out, err = runs["done"]["from_run"]
    assert code == 0, err
    out_dir = runs["root"] / "from_run"
    assert sorted(os.listdir(out_dir)) == ["seed0001.png", "seed0002.png"]
    for seed, pixels in zip([1, 2], expected_pngs(runs["base"], [1, 2])):
        np.testing.assert_allclose(np.asarray(Image.open(out_dir / f"seed{seed:04d}.png")), pixels, atol=1)


def test_export_cli_writes_the_first_version(runs):
    code, out, err = runs["done"]["export"]
    assert code == 0, err
    version_dir = runs["root"] / "exported" / "1"
    assert str(version_dir) in out and (version_dir / "saved_model.pb").exists()
    assert (version_dir / export.KERAS_FILE).exists() and export.read_metadata(version_dir)["images_seen"] == 5000


@pytest.mark.parametrize("name, flag", [("bad_generate", "--frames_per_seed"), ("bad_export", "--run_dir"),
                                        ("bad_serve", "--port")])
def test_misuse_exits_2_with_one_line_naming_the_flag(runs, name, flag):
    code, out, err = runs["done"][name]
    # TensorFlow's C++ start-up lines ignore TF_CPP_MIN_LOG_LEVEL; ours is the one "progan-" line.
    ours = [line for line in err.splitlines() if line.startswith("progan-")]
    assert code == 2 and len(ours) == 1 and flag in ours[0], err


def test_serve_cli_answers_on_127_0_0_1(runs):
    serve = runs["serve"]
    line = serve.stdout.readline()
    assert "http://127.0.0.1:" in line, line + serve.stderr.read() if serve.poll() is not None else line
    url = line.split("at ", 1)[1].strip()
    local = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with local.open(url, timeout=30) as response:
        assert json.loads(response.read())["model_version_status"][0]["state"] == "AVAILABLE"
    request = urllib.request.Request(url + ":predict", data=json.dumps(
        {"signature_name": "generate_png", "instances": [9]}).encode())
    with local.open(request, timeout=30) as response:
        png = base64.b64decode(json.loads(response.read())["predictions"][0]["b64"])
    assert Image.open(io.BytesIO(png)).size == (16, 16)
