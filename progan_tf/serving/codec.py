"""The TF Serving REST contract: routes, :predict requests, and the response documents.

Pure (JSON and numpy in and out, no sockets or threads), shaped exactly as TF Serving documents them
(https://www.tensorflow.org/tfx/serving/api_rest) so its clients work unchanged; `progan_tf.serving.server` adds HTTP.
"""
import base64
import collections
import http
import json
import os
import re

import numpy as np
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2

# TF Serving's version policy by default serves only the newest version ("latest 1").
AVAILABLE, END = "AVAILABLE", "END"
PREDICT_METHOD = "tensorflow/serving/predict"
_ROUTE = re.compile(r"/v1/models/(?P<model>[^/:]+)(?:/versions/(?P<version>[^/:]+))?"
                    r"(?:(?P<metadata>/metadata)|:(?P<verb>[A-Za-z]+))?")
# proto DataType name -> numpy dtype: the numeric inputs this server decodes from JSON.
_NUMPY_DTYPES = {"DT_FLOAT": np.float32, "DT_DOUBLE": np.float64, "DT_INT32": np.int32, "DT_INT64": np.int64}
# Deepest nesting of arrays/objects a request may have: a batch of latents needs 3 levels with
# its object, and Python's JSON decoder recurses once per level (RecursionError near 1000).
MAX_JSON_DEPTH = 64
# A JSON string, or an unterminated one up to the end of the text. Possessive, and matching at
# every quote it starts from, so one pass over the body is linear whatever the body holds.
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_OPENERS, _BRACKETS = np.frombuffer(b"[{", np.uint8), np.frombuffer(b"[]{}", np.uint8)

TensorInfo = collections.namedtuple("TensorInfo", "name dtype shape")
TensorInfo.__doc__ = """One signature input or output: graph tensor name, DT_* dtype, shape (None = any)."""
Signature = collections.namedtuple("Signature", "inputs outputs method_name")
Signature.__doc__ = """A SignatureDef: dicts key -> TensorInfo, and the method name."""
Route = collections.namedtuple("Route", "model version kind")
Route.__doc__ = """A parsed URL: model name, version (int or None = newest), kind status|metadata|predict."""


class ServingError(Exception):
    """A request answered with `{"error": message}` (one line: the problem and the fix) and HTTP `status`.

    400 bad request, 404 unknown model/version, 405 wrong method, 411 no length, 413 too large; 500 when the
    model's answer cannot be sent as JSON.
    """

    def __init__(self, message, status=http.HTTPStatus.BAD_REQUEST):
        super().__init__(message)
        self.message = message
        self.status = int(status)


def error_document(message):
    """The body of every error response."""
    return {"error": message}


def encode_json(document):
    """The bytes of a response document; ValueError if it holds NaN or an infinity.

    They are not JSON: strict parsers (and many TF Serving clients) reject them, so they never leave the server.
    """
    return json.dumps(document, allow_nan=False).encode("utf-8")


def json_depth(body):
    """The deepest nesting of arrays and objects in JSON bytes (0: a scalar, 1: flat), found without decoding them.

    Brackets inside strings do not count; an unterminated string hides the rest of the text, as it does
    from the decoder (which fails there).
    """
    structure = np.frombuffer(_JSON_STRING.sub(b"", body), np.uint8)
    brackets = structure[np.isin(structure, _BRACKETS)]
    depth = np.cumsum(np.where(np.isin(brackets, _OPENERS), 1, -1))
    return int(depth.max(initial=0))


def parse_route(method, path):
    """HTTP method and path (e.g. "/v1/models/faces/versions/3:predict"; query ignored) -> Route.

    Status and metadata answer GET, :predict POST. ServingError 404 for paths outside the API, a non-integer
    version or a verb other than :predict; 405 for the wrong method.
    """
    path = path.split("?", 1)[0]
    match = _ROUTE.fullmatch(path)
    if not match:
        raise ServingError(f"Malformed request: {method} {path}", http.HTTPStatus.NOT_FOUND)
    version = match["version"]
    if version is not None:
        if not re.fullmatch(r"\d{1,18}", version):
            raise ServingError(f"Malformed request: {method} {path}: version must be an integer",
                               http.HTTPStatus.NOT_FOUND)
        version = int(version)
    kind = "metadata" if match["metadata"] else (match["verb"] or "status")
    if kind not in ("status", "metadata", "predict"):
        raise ServingError(f"Malformed request: {method} {path}: only :predict is supported, not :{kind}",
                           http.HTTPStatus.NOT_FOUND)
    expected = "POST" if kind == "predict" else "GET"
    if method != expected:
        raise ServingError(f"Malformed request: {method} {path}: use {expected}", http.HTTPStatus.METHOD_NOT_ALLOWED)
    return Route(match["model"], version, kind)


def read_signatures(export_dir):
    """A SavedModel's predict-method SignatureDefs as dict name -> Signature, read from saved_model.pb, not loaded."""
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())

    def info(tensor):
        shape = None if tensor.tensor_shape.unknown_rank else tuple(
            None if d.size < 0 else d.size for d in tensor.tensor_shape.dim)
        return TensorInfo(tensor.name, types_pb2.DataType.Name(tensor.dtype), shape)

    return {name: Signature({k: info(v) for k, v in sig.inputs.items()},
                            {k: info(v) for k, v in sig.outputs.items()}, sig.method_name)
            for name, sig in proto.meta_graphs[0].signature_def.items()
            if sig.method_name == PREDICT_METHOD}


def _to_array(key, value, info):
    """One named input (nested JSON lists) -> numpy array of the signature's dtype and shape."""
    dtype = _NUMPY_DTYPES.get(info.dtype)
    if dtype is None:
        raise ServingError(f"input '{key}': dtype {info.dtype} is not supported by this server")
    try:
        array = np.array(value)
    except ValueError:
        raise ServingError(f"input '{key}': ragged nested lists; every row must have the same shape") from None
    # JSON true/false are not numbers here: alone they make kind "b", beside numbers numpy casts them.
    if array.dtype.kind == "b" or any(type(v) is bool for v in np.array(value, dtype=object).reshape(-1)):
        raise ServingError(f"input '{key}' must be a (nested list of) number(s) for {info.dtype}, got boolean values")
    if array.dtype.kind not in "iuf":
        raise ServingError(f"input '{key}' must be a (nested list of) number(s) for {info.dtype}, "
                           f"got {_json_type(array)} values")
    if np.issubdtype(dtype, np.integer) and array.dtype.kind == "f":
        raise ServingError(f"input '{key}' must hold integers for {info.dtype}, got non-integer numbers")
    if np.issubdtype(dtype, np.integer) and array.size and (
            array.min() < np.iinfo(dtype).min or array.max() > np.iinfo(dtype).max):
        raise ServingError(f"input '{key}': a value is out of range for {info.dtype}")
    with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf, refused below
        array = array.astype(dtype)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ServingError(f"input '{key}' holds NaN, Infinity or a number beyond the range of {info.dtype}; "
                           f"send finite numbers")
    if info.shape is not None and (array.ndim != len(info.shape) or any(
            want is not None and got != want for got, want in zip(array.shape, info.shape))):
        expected = "[" + ", ".join("-1" if d is None else str(d) for d in info.shape) + "]"
        raise ServingError(f"input '{key}' has shape {list(array.shape)}; the signature expects {expected} "
                           f"(-1 = any size)")
    return array


def _json_type(array):
    return {"U": "string", "S": "string"}.get(array.dtype.kind, "mixed or out-of-range")


def parse_predict_request(body, signatures, max_batch_size):
    """Decode a :predict body (bytes) against a model's signatures -> (signature name, {input key: array}, row_format).

    ServingError for malformed JSON or JSON nested deeper than MAX_JSON_DEPTH, an unknown signature or input,
    a wrong dtype or shape, a NaN or infinite value, an empty batch or one (0-th dim) over max_batch_size.
    """
    depth = json_depth(body)
    if depth > MAX_JSON_DEPTH:
        raise ServingError(f"JSON Parse error: the body nests arrays and objects {depth} deep, more than the "
                           f"{MAX_JSON_DEPTH} this server reads; send each input as a (nested) list of numbers")
    try:
        request = json.loads(body)
    except (ValueError, RecursionError) as e:  # RecursionError: the decoder's own guard, behind the check above
        raise ServingError(f"JSON Parse error: {e}") from None
    if not isinstance(request, dict):
        raise ServingError("the request body must be a JSON object with 'instances' or 'inputs'")
    unknown = set(request) - {"signature_name", "instances", "inputs"}
    if unknown:
        raise ServingError(f"unknown request keys {sorted(unknown)}; expected 'signature_name' and "
                           f"one of 'instances' (row format) or 'inputs' (columnar format)")
    name = request.get("signature_name", "serving_default")
    if not isinstance(name, str) or name not in signatures:
        raise ServingError(f'Serving signature name: "{name}" not found in signature def; '
                           f"available: {sorted(signatures)}")
    signature = signatures[name]
    if ("instances" in request) == ("inputs" in request):
        raise ServingError("the request must have exactly one of 'instances' (row format) or 'inputs' "
                           "(columnar format)")
    row_format = "instances" in request
    values = _rows_to_columns(request["instances"], signature) if row_format else \
        _named_columns(request["inputs"], signature)
    # The batch is checked before conversion, so an oversized request costs no array work.
    for key, value in values.items():
        if not isinstance(value, list) or not value:
            raise ServingError(f"input '{key}' must be a non-empty list with one entry per example")
        if len(value) > max_batch_size:
            raise ServingError(f"input '{key}' has a batch of {len(value)}; this server accepts at most "
                               f"{max_batch_size} per request")
    inputs = {key: _to_array(key, value, signature.inputs[key]) for key, value in values.items()}
    return name, inputs, row_format


def _named_columns(value, signature):
    """Columnar `inputs`: a single tensor for a one-input signature, else an object keyed by input."""
    keys = set(signature.inputs)
    if isinstance(value, dict):
        if set(value) != keys:
            raise ServingError(f"'inputs' must name exactly the signature's inputs {sorted(keys)}, "
                               f"got {sorted(value)}")
        return value
    if len(keys) != 1:
        raise ServingError(f"'inputs' must be an object with the inputs {sorted(keys)}")
    return {next(iter(keys)): value}


def _rows_to_columns(instances, signature):
    """Row `instances`: a list of values (one input) or of objects keyed by input."""
    keys = set(signature.inputs)
    if not isinstance(instances, list):
        raise ServingError("'instances' must be a list with one entry per example")
    if instances and all(isinstance(row, dict) for row in instances):
        for row in instances:
            if set(row) != keys:
                raise ServingError(f"every object in 'instances' must have exactly the inputs {sorted(keys)}, "
                                   f"got {sorted(row)}")
        return {key: [row[key] for row in instances] for key in keys}
    if len(keys) != 1:
        raise ServingError(f"'instances' must be a list of objects with the inputs {sorted(keys)}")
    return {next(iter(keys)): instances}


def _jsonable(key, array):
    """An output array as nested lists; `*_bytes` strings as {"b64": ...} (TF Serving's rule)."""
    if array.dtype.kind in "OSU":
        if key.endswith("_bytes"):
            return np.vectorize(lambda b: {"b64": base64.b64encode(b).decode("ascii")}, otypes=[object])(
                array).tolist()
        return np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])(array).tolist()
    return array.tolist()


def predict_response(outputs, row_format):
    """The :predict response document of `outputs` (dict key -> numpy array [N, ...]).

    {"predictions": ...} for a row_format ('instances') request, else {"outputs": ...}; a single output is not
    keyed by name. ServingError 500 if an output holds NaN or Infinity (JSON has no token for them).
    """
    for key, value in outputs.items():
        value = np.asarray(value)
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise ServingError(f"the model computed NaN or Infinity in output '{key}', which JSON cannot carry; "
                               f"check the exported weights", http.HTTPStatus.INTERNAL_SERVER_ERROR)
    columns = {key: _jsonable(key, np.asarray(value)) for key, value in outputs.items()}
    if not row_format:
        return {"outputs": next(iter(columns.values())) if len(columns) == 1 else columns}
    if len(columns) == 1:
        return {"predictions": next(iter(columns.values()))}
    return {"predictions": [dict(zip(columns, row)) for row in zip(*columns.values())]}


def status_document(states):
    """GetModelStatusResponse as JSON, newest first, of `states`: dict version (int) -> (state, error message or "").

    {"model_version_status": [{"version": "3", "state": "AVAILABLE", "status": {...}}, ...]}
    """
    return {"model_version_status": [
        {"version": str(version), "state": state,
         "status": {"error_code": "UNKNOWN" if message else "OK", "error_message": message}}
        for version, (state, message) in sorted(states.items(), reverse=True)]}


def _tensor_info_json(info):
    shape = {"dim": [], "unknown_rank": True} if info.shape is None else {
        "dim": [{"size": str(-1 if d is None else d), "name": ""} for d in info.shape], "unknown_rank": False}
    return {"dtype": info.dtype, "tensor_shape": shape, "name": info.name}


def metadata_document(model, version, signatures):
    """GetModelMetadataResponse as JSON (the signature_def map of one version)."""
    return {
        "model_spec": {"name": model, "signature_name": "", "version": str(version)},
        "metadata": {"signature_def": {"signature_def": {
            name: {"inputs": {k: _tensor_info_json(v) for k, v in sig.inputs.items()},
                   "outputs": {k: _tensor_info_json(v) for k, v in sig.outputs.items()},
                   "method_name": sig.method_name}
            for name, sig in sorted(signatures.items())}}},
    }


