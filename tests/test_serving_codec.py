"""progan_tf.serving.codec: the TF Serving REST contract, pure (no sockets)."""
import base64
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from progan_tf.serving import codec
from progan_tf.serving.codec import ServingError, Signature, TensorInfo

SIGNATURES = {
    "serving_default": Signature({"latents": TensorInfo("serving_default_latents:0", "DT_FLOAT", (None, 4))},
                                 {"images": TensorInfo("out:0", "DT_FLOAT", (None, 2, 2, 3))}, codec.PREDICT_METHOD),
    "generate_png": Signature({"seeds": TensorInfo("generate_png_seeds:0", "DT_INT64", (None,))},
                              {"png_bytes": TensorInfo("out:1", "DT_STRING", (None,))}, codec.PREDICT_METHOD),
}


def parse(document, max_batch_size=8):
    return codec.parse_predict_request(json.dumps(document).encode(), SIGNATURES, max_batch_size)


def test_routes():
    assert codec.parse_route("GET", "/v1/models/m") == ("m", None, "status")
    assert codec.parse_route("GET", "/v1/models/m/versions/3") == ("m", 3, "status")
    assert codec.parse_route("GET", "/v1/models/m/versions/3/metadata") == ("m", 3, "metadata")
    assert codec.parse_route("POST", "/v1/models/m:predict") == ("m", None, "predict")
    assert codec.parse_route("POST", "/v1/models/m/versions/12:predict") == ("m", 12, "predict")
    for method, path, status in [("GET", "/v2/models/m", 404), ("POST", "/v1/models/m:classify", 404),
                                 ("GET", "/v1/models/m/versions/x", 404), ("GET", "/v1/models/m:predict", 405),
                                 ("POST", "/v1/models/m/metadata", 405)]:
        with pytest.raises(ServingError) as error:
            codec.parse_route(method, path)
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
    (b'{"instances": [[0.5, true, 0, 0]]}', "boolean"),  # numpy alone would read true as 1.0
    (b'{"signature_name": "generate_png", "instances": [1, false]}', "boolean"),
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
        codec.parse_predict_request(body, SIGNATURES, 8)
    assert error.value.status == 400 and fragment in error.value.message


def nested(depth, opener=b"[", closer=b"]"):
    """`depth` nested arrays (or objects, with opener b'{"a":' and closer b"}") around a 0."""
    return opener * depth + b"0" + closer * depth


@pytest.mark.parametrize("body", [
    b'{"instances": ' + nested(64) + b"}",  # one level past the limit, counting the request object
    nested(1000),
    b'{"instances": [' + nested(1000, b'{"a":', b"}") + b"]}",
    nested(100_000),  # json.loads alone raises RecursionError here
])
def test_deep_nesting_is_400_before_decoding(body):
    with pytest.raises(ServingError) as error:
        codec.parse_predict_request(body, SIGNATURES, 8)
    assert error.value.status == 400 and "nests arrays and objects" in error.value.message


def test_nesting_at_the_limit_is_decoded():
    # 64 levels with the request object: decoded, and refused for its shape, not its depth.
    with pytest.raises(ServingError, match="shape"):
        codec.parse_predict_request(b'{"instances": ' + nested(63) + b"}", SIGNATURES, 8)


@pytest.mark.parametrize("body, depth", [
    (b"0", 0), (b"[]", 1), (b'{"a": [[1], [2]]}', 3), (b'"[[["', 0), (b'["]]]", ["{"]]', 2),
    (b'["\\\\", [1]]', 2),  # the string holds an escaped backslash, then ends
    (b'["\\"[[[", 0]', 1),  # an escaped quote does not end the string
    (b'[["[[[', 2),  # an unterminated string hides the rest, as it does from the decoder
])
def test_json_depth_counts_brackets_outside_strings(body, depth):
    assert codec.json_depth(body) == depth


def test_json_depth_is_linear_on_hostile_strings():
    # An unterminated string of escaped quotes: a scan restarting at every quote is quadratic
    # here (hours), one pass takes milliseconds. In a subprocess, so that a regression fails
    # at the timeout instead of hanging the suite.
    code = "from progan_tf.serving import codec; assert codec.json_depth(b'[\"' + b'\\\\\"' * 200_000) == 1"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999", "3.5e38"])
def test_non_finite_latents_are_400(value):
    body = f'{{"instances": [[0, {value}, 2, 3]]}}'.encode()
    with pytest.raises(ServingError) as error:
        codec.parse_predict_request(body, SIGNATURES, 8)
    assert error.value.status == 400 and "NaN, Infinity" in error.value.message


def test_non_finite_outputs_never_reach_json():
    with pytest.raises(ServingError) as error:
        codec.predict_response({"images": np.array([[0.5, np.nan]], np.float32)}, row_format=True)
    assert error.value.status == 500 and "'images'" in error.value.message
    assert codec.encode_json({"predictions": [0.5]}) == b'{"predictions": [0.5]}'
    with pytest.raises(ValueError):
        codec.encode_json({"predictions": [float("inf")]})


def test_responses_follow_the_row_and_columnar_conventions():
    images = np.zeros((2, 1, 1, 3), np.float32)
    assert codec.predict_response({"images": images}, row_format=True) == {"predictions": images.tolist()}
    assert codec.predict_response({"images": images}, row_format=False) == {"outputs": images.tolist()}
    png = np.array([b"\x89PNG1", b"\x89PNG2"], dtype=object)
    rows = codec.predict_response({"png_bytes": png}, row_format=True)["predictions"]
    assert [base64.b64decode(row["b64"]) for row in rows] == list(png)
    both = codec.predict_response({"images": images, "png_bytes": png}, row_format=True)
    assert set(both["predictions"][1]) == {"images", "png_bytes"}
    columns = codec.predict_response({"images": images, "png_bytes": png}, row_format=False)["outputs"]
    assert columns["png_bytes"][0] == {"b64": base64.b64encode(b"\x89PNG1").decode()}


def test_status_and_metadata_documents_are_shaped_like_tf_serving():
    assert codec.status_document({1: (codec.END, ""), 2: (codec.AVAILABLE, "")}) == {"model_version_status": [
        {"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}},
        {"version": "1", "state": "END", "status": {"error_code": "OK", "error_message": ""}}]}
    document = codec.metadata_document("m", 2, SIGNATURES)
    assert document["model_spec"] == {"name": "m", "signature_name": "", "version": "2"}
    latents = document["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]["latents"]
    assert latents == {"dtype": "DT_FLOAT", "name": "serving_default_latents:0", "tensor_shape": {
        "dim": [{"size": "-1", "name": ""}, {"size": "4", "name": ""}], "unknown_rank": False}}
