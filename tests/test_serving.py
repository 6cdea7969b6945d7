"""The TF Serving REST contract: the pure codec, then a live server on 127.0.0.1 only."""
import base64
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from progan_tf import export, serving
from progan_tf.serving import ServingError, Signature, TensorInfo
from test_export import TINY, tiny_generator

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# No proxy from the environment may see (or forward) the test traffic: 127.0.0.1 directly.
LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))
NO_PROXY_ENV = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
SIGNATURES = {
    "serving_default": Signature({"latents": TensorInfo("serving_default_latents:0", "DT_FLOAT", (None, 4))},
                                 {"images": TensorInfo("out:0", "DT_FLOAT", (None, 2, 2, 3))}, serving.PREDICT_METHOD),
    "generate_png": Signature({"seeds": TensorInfo("generate_png_seeds:0", "DT_INT64", (None,))},
                              {"png_bytes": TensorInfo("out:1", "DT_STRING", (None,))}, serving.PREDICT_METHOD),
}


def parse(document, max_batch_size=8):
    return serving.parse_predict_request(json.dumps(document).encode(), SIGNATURES, max_batch_size)


# --- codec -------------------------------------------------------------------------------------

def test_routes():
    assert serving.parse_route("GET", "/v1/models/m") == ("m", None, "status")
    assert serving.parse_route("GET", "/v1/models/m/versions/3") == ("m", 3, "status")
    assert serving.parse_route("GET", "/v1/models/m/versions/3/metadata") == ("m", 3, "metadata")
    assert serving.parse_route("POST", "/v1/models/m:predict") == ("m", None, "predict")
    assert serving.parse_route("POST", "/v1/models/m/versions/12:predict") == ("m", 12, "predict")
    for method, path, status in [("GET", "/v2/models/m", 404), ("POST", "/v1/models/m:classify", 404),
                                 ("GET", "/v1/models/m/versions/x", 404), ("GET", "/v1/models/m:predict", 405),
                                 ("POST", "/v1/models/m/metadata", 405)]:
        with pytest.raises(ServingError) as error:
            serving.parse_route(method, path)
        assert error.value.status == status, path


def test_row_and_columnar_requests_decode_to_the_same_arrays():
    latents = [[0.0, 1.0, 2.0, 3.0], [4, 5, 6, 7]]
    for document in ({"instances": latents}, {"instances": [{"latents": row} for row in latents]},
                     {"inputs": latents}, {"inputs": {"latents": latents}},
                     {"signature_name": "serving_default", "inputs": {"latents": latents}}):
        name, inputs, row_format = parse(document)
        assert name == "serving_default" and row_format == ("instances" in document)
        assert inputs["latents"].dtype == np.float32
        np.testing.assert_array_equal(inputs["latents"], np.array(latents, np.float32))
    name, inputs, _ = parse({"signature_name": "generate_png", "instances": [1, 2 ** 62]})
    assert name == "generate_png" and inputs["seeds"].dtype == np.int64 and inputs["seeds"][1] == 2 ** 62


@pytest.mark.parametrize("body, fragment", [
    (b"{not json", "JSON Parse error"),
    (b"[1, 2]", "JSON object"),
    (b'{"instances": [[0, 1, 2, 3]], "inputs": [[0, 1, 2, 3]]}', "exactly one"),
    (b'{"signature_name": "nope", "instances": [[0, 1, 2, 3]]}', 'signature name: "nope" not found'),
    (b'{"instances": [[0, 1, 2]]}', "shape [1, 3]"),
    (b'{"instances": [0, 1, 2, 3]}', "shape [4]"),
    (b'{"instances": [[0, 1], [0, 1, 2, 3]]}', "ragged"),
    (b'{"instances": [["a", "b", "c", "d"]]}', "string"),
    (b'{"instances": [[true, false, true, false]]}', "boolean"),
    (b'{"instances": []}', "empty"),
    (b'{"inputs": {"z": [[0, 1, 2, 3]]}}', "inputs ['latents']"),
    (b'{"instances": [{"z": [0, 1, 2, 3]}]}', "inputs ['latents']"),
    (b'{"signature_name": "generate_png", "instances": [1.5]}', "integers"),
    (b'{"signature_name": "generate_png", "instances": [100000000000000000000]}', "out-of-range"),
    (b'{"signature_name": "generate_png", "instances": [1, 2, 3, 4, 5, 6, 7, 8, 9]}', "at most 8"),
    (b'{"instances": [[0, 1, 2, 3]], "extra": 1}', "unknown request keys"),
])
def test_bad_requests_are_400_with_a_reason(body, fragment):
    with pytest.raises(ServingError) as error:
        serving.parse_predict_request(body, SIGNATURES, 8)
    assert error.value.status == 400 and fragment in error.value.message


def test_responses_follow_the_row_and_columnar_conventions():
    images = np.zeros((2, 1, 1, 3), np.float32)
    assert serving.predict_response({"images": images}, row_format=True) == {"predictions": images.tolist()}
    assert serving.predict_response({"images": images}, row_format=False) == {"outputs": images.tolist()}
    png = np.array([b"\x89PNG1", b"\x89PNG2"], dtype=object)
    rows = serving.predict_response({"png_bytes": png}, row_format=True)["predictions"]
    assert [base64.b64decode(row["b64"]) for row in rows] == list(png)
    both = serving.predict_response({"images": images, "png_bytes": png}, row_format=True)
    assert set(both["predictions"][1]) == {"images", "png_bytes"}
    columns = serving.predict_response({"images": images, "png_bytes": png}, row_format=False)["outputs"]
    assert columns["png_bytes"][0] == {"b64": base64.b64encode(b"\x89PNG1").decode()}


def test_status_and_metadata_documents_are_shaped_like_tf_serving():
    assert serving.status_document({1: (serving.END, ""), 2: (serving.AVAILABLE, "")}) == {"model_version_status": [
        {"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}},
        {"version": "1", "state": "END", "status": {"error_code": "OK", "error_message": ""}}]}
    document = serving.metadata_document("m", 2, SIGNATURES)
    assert document["model_spec"] == {"name": "m", "signature_name": "", "version": "2"}
    latents = document["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]["latents"]
    assert latents == {"dtype": "DT_FLOAT", "name": "serving_default_latents:0", "tensor_shape": {
        "dim": [{"size": "-1", "name": ""}, {"size": "4", "name": ""}], "unknown_rank": False}}


# --- live server -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("serving") / "tiny"
    gs = tiny_generator()
    export.export_generator(gs, TINY, base / "1", {"images_seen": 1})
    repository = serving.ModelRepository("tiny", str(base))
    httpd = serving.make_server(repository, "127.0.0.1", 0, max_batch_size=4, max_request_bytes=64 << 10,
                                poll_seconds=0.1)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{httpd.server_address[1]}", "base": base, "gs": gs}
    httpd.shutdown()
    httpd.server_close()


def call(server, path, document=None, raw=None):
    """(HTTP status, JSON body) of a GET (no document) or POST to 127.0.0.1."""
    data = raw if raw is not None else (None if document is None else json.dumps(document).encode())
    request = urllib.request.Request(server["url"] + path, data=data)
    try:
        with LOCAL.open(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_status_and_metadata(server):
    status, document = call(server, "/v1/models/tiny")
    assert status == 200 and document["model_version_status"][0]["state"] == "AVAILABLE"
    status, document = call(server, "/v1/models/tiny/versions/1/metadata")
    signatures = document["metadata"]["signature_def"]["signature_def"]
    assert status == 200 and set(signatures) == set(export.SIGNATURES)
    assert signatures["generate_png"]["outputs"]["png_bytes"]["dtype"] == "DT_STRING"
    assert signatures["serving_default"]["inputs"]["latents"]["tensor_shape"]["dim"][1]["size"] == "16"


def test_predict_rows_and_columns(server):
    latents = np.random.default_rng(0).normal(size=(2, TINY.latent_size)).astype(np.float32)
    expected = export.to_unit_range(server["gs"](latents)).numpy()
    status, rows = call(server, "/v1/models/tiny:predict", {"instances": latents.tolist()})
    assert status == 200
    np.testing.assert_allclose(np.array(rows["predictions"]), expected, atol=1e-6)
    status, columns = call(server, "/v1/models/tiny/versions/1:predict",
                           {"signature_name": "generate", "inputs": {"seeds": [3, 4]}})
    seeded = export.to_unit_range(server["gs"](export.seed_latents([3, 4], TINY.latent_size))).numpy()
    assert status == 200
    np.testing.assert_allclose(np.array(columns["outputs"]), seeded, atol=1e-6)


def test_png_outputs_are_b64_and_decode_to_the_right_size(server):
    status, document = call(server, "/v1/models/tiny:predict", {"signature_name": "generate_png", "instances": [5, 6]})
    assert status == 200 and len(document["predictions"]) == 2
    image = Image.open(io.BytesIO(base64.b64decode(document["predictions"][0]["b64"])))
    assert image.format == "PNG" and image.size == (16, 16) and image.mode == "RGB"


@pytest.mark.parametrize("path, raw, status", [
    ("/v1/models/tiny:predict", b"{oops", 400),
    ("/v1/models/tiny:predict", b'{"instances": [[1, 2, 3]]}', 400),
    ("/v1/models/tiny:predict", b'{"instances": [["x"]]}', 400),
    ("/v1/models/tiny:predict", b'{"signature_name": "generate", "instances": [0.5]}', 400),
    ("/v1/models/tiny:predict", b'{"signature_name": "nope", "instances": [1]}', 400),
    ("/v1/models/tiny:predict", b'{"signature_name": "generate", "instances": [1, 2, 3, 4, 5]}', 400),
    ("/v1/models/other:predict", b'{"instances": [1]}', 404),
    ("/v1/models/tiny/versions/99:predict", b'{"instances": [1]}', 404),
    ("/v1/models/other", None, 404),
    ("/v1/models/tiny/versions/99", None, 404),
    ("/v1/elsewhere", None, 404),
    ("/v1/models/tiny:predict", b" " * (65 << 10), 413),
])
def test_bad_requests_get_4xx_json_and_the_server_keeps_serving(server, path, raw, status):
    code, document = call(server, path, raw=raw)
    assert code == status and isinstance(document["error"], str) and document["error"]
    code, _ = call(server, "/v1/models/tiny:predict", {"signature_name": "generate", "instances": [1]})
    assert code == 200


def test_client_script_against_the_server(server, tmp_path):
    """export/client.py, standard library only, in both of its modes."""
    for args in (["--seeds=1,2"], ["--random=2"]):
        subprocess.run([sys.executable, os.path.join(REPO, "export", "client.py"), "--server", server["url"],
                        "--model=tiny", f"--out_dir={tmp_path}", *args], check=True, capture_output=True, timeout=60,
                       env=NO_PROXY_ENV)
    names = sorted(os.listdir(tmp_path))
    assert names == ["latent0000.png", "latent0001.png", "seed0001.png", "seed0002.png"]
    for name in names:
        assert Image.open(tmp_path / name).size == (16, 16)
    # The client's own PNG encoder agrees with the server's (same pixels from the same seed).
    _, document = call(server, "/v1/models/tiny:predict", {"signature_name": "generate", "instances": [1]})
    np.testing.assert_allclose(np.asarray(Image.open(tmp_path / "seed0001.png")),
                               np.rint(np.array(document["predictions"][0]) * 255), atol=1)


def test_new_version_is_served_without_restart(server):
    # Runs last in this module: afterwards version 2 is the one served.
    tmp = server["base"] / ".2.tmp"
    shutil.copytree(server["base"] / "1", tmp)
    os.rename(tmp, server["base"] / "2")
    deadline = time.time() + 20
    while time.time() < deadline:
        _, document = call(server, "/v1/models/tiny")
        if document["model_version_status"][0] == {
                "version": "2", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}:
            break
        time.sleep(0.1)
    assert [(s["version"], s["state"]) for s in document["model_version_status"]] == [("2", "AVAILABLE"),
                                                                                      ("1", "END")]
    assert call(server, "/v1/models/tiny/metadata")[1]["model_spec"]["version"] == "2"
    assert call(server, "/v1/models/tiny/versions/2:predict", {"signature_name": "generate", "inputs": [1]})[0] == 200
    assert call(server, "/v1/models/tiny/versions/1:predict", {"signature_name": "generate", "inputs": [1]})[0] == 404
