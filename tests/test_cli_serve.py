"""progan-serve as a subprocess: it answers on 127.0.0.1, and a busy port or a bad host is one line, exit 1."""
import base64
import io
import json
import socket
import urllib.request

import pytest
from PIL import Image

from cli_processes import NO_PROXY_ENV, forked, spawn, tiny_export


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    _, base = tiny_export(root)
    # The server runs until told to stop: the test reads its address and talks to it.
    serve = spawn("serve", [f"--model_base_path={base}", "--port=0", "--file_system_poll_wait_seconds=0"], root,
                  env=NO_PROXY_ENV)
    yield {"root": root, "base": base, "serve": serve}
    if serve.poll() is None:
        serve.terminate()
    serve.communicate(timeout=30)


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


def test_busy_port_and_bad_host_end_in_one_line_and_exit_1(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        results = forked({flag: ("serve", [f"--model_base_path={tmp_path}", *flags])
                          for flag, flags in [("--port", [f"--port={busy.getsockname()[1]}"]),
                                              ("--host", ["--host=::1", "--port=0"])]}, tmp_path)  # ::1: not IPv4
    for flag, (code, out, err) in results.items():
        # TensorFlow's C++ start-up lines ignore TF_CPP_MIN_LOG_LEVEL; ours is the one "progan-" line.
        ours = [line for line in err.splitlines() if line.startswith("progan-serve")]
        assert code == 1 and len(ours) == 1 and flag in ours[0] and "Traceback" not in err, err
