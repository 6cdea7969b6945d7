"""The TF Serving REST API for exported generators: request/response codec and a small server.

The codec (`parse_route`, `parse_predict_request`, `predict_response`,
`status_document`, `metadata_document`, `read_signatures`) is pure: JSON documents
and numpy arrays in and out, shaped exactly as TensorFlow Serving documents them
(https://www.tensorflow.org/tfx/serving/api_rest), so clients written against TF
Serving work unchanged. `ModelRepository` and `make_server` put it behind
`http.server` for `progan-serve`; production serving is tensorflow/serving itself.
"""
import base64
import collections
import http
import http.server
import json
import logging
import os
import re
import threading

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2

from progan_tf.export import versions

# TF Serving's version policy by default serves only the newest version ("latest 1").
AVAILABLE, END = "AVAILABLE", "END"
PREDICT_METHOD = "tensorflow/serving/predict"
_ROUTE = re.compile(r"/v1/models/(?P<model>[^/:]+)(?:/versions/(?P<version>[^/:]+))?"
                    r"(?:(?P<metadata>/metadata)|:(?P<verb>[A-Za-z]+))?")
# proto DataType name -> numpy dtype: the numeric inputs this server decodes from JSON.
_NUMPY_DTYPES = {"DT_FLOAT": np.float32, "DT_DOUBLE": np.float64, "DT_INT32": np.int32, "DT_INT64": np.int64}

TensorInfo = collections.namedtuple("TensorInfo", "name dtype shape")
TensorInfo.__doc__ = """One signature input or output: graph tensor name, DT_* dtype, shape (None = any)."""
Signature = collections.namedtuple("Signature", "inputs outputs method_name")
Signature.__doc__ = """A SignatureDef: dicts key -> TensorInfo, and the method name."""
Route = collections.namedtuple("Route", "model version kind")
Route.__doc__ = """A parsed URL: model name, version (int or None = newest), kind status|metadata|predict."""


class ServingError(Exception):
    """A request the server answers with `{"error": message}` and an HTTP 4xx status.

    Args:
      message: the error text.
      status: HTTP status code (400 bad request, 404 unknown model/version, 413 too large).
    """

    def __init__(self, message, status=http.HTTPStatus.BAD_REQUEST):
        super().__init__(message)
        self.message = message
        self.status = int(status)


def error_document(message):
    """The body of every error response."""
    return {"error": message}


def parse_route(method, path):
    """Map an HTTP method and path to a Route.

    Args:
      method: "GET" or "POST".
      path: URL path, e.g. "/v1/models/faces/versions/3:predict" (a query string is ignored).

    Returns:
      Route(model, version, kind).

    Raises:
      ServingError: 404 for paths outside the API, a non-integer version or a verb
        other than :predict; 405 for the wrong HTTP method.
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
    """The SignatureDefs of a SavedModel, read from saved_model.pb without loading it.

    Returns:
      dict signature name -> Signature (only signatures with the predict method).
    """
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
    if array.dtype.kind not in "iuf":  # bool is kind "b": JSON true/false are not numbers here
        raise ServingError(f"input '{key}' must be a (nested list of) number(s) for {info.dtype}, "
                           f"got {_json_type(array)} values")
    if np.issubdtype(dtype, np.integer) and array.dtype.kind == "f":
        raise ServingError(f"input '{key}' must hold integers for {info.dtype}, got non-integer numbers")
    if np.issubdtype(dtype, np.integer) and array.size and (
            array.min() < np.iinfo(dtype).min or array.max() > np.iinfo(dtype).max):
        raise ServingError(f"input '{key}': a value is out of range for {info.dtype}")
    if info.shape is not None and (array.ndim != len(info.shape) or any(
            want is not None and got != want for got, want in zip(array.shape, info.shape))):
        expected = "[" + ", ".join("-1" if d is None else str(d) for d in info.shape) + "]"
        raise ServingError(f"input '{key}' has shape {list(array.shape)}; the signature expects {expected} "
                           f"(-1 = any size)")
    return array.astype(dtype)


def _json_type(array):
    return {"b": "boolean", "U": "string", "S": "string"}.get(array.dtype.kind, "mixed or out-of-range")


def parse_predict_request(body, signatures, max_batch_size):
    """Decode a :predict request body against a model's signatures.

    Args:
      body: request body bytes (JSON; NaN and Infinity accepted, as TF Serving does).
      signatures: dict name -> Signature of the model version.
      max_batch_size: largest batch (0-th dimension) accepted.

    Returns:
      (signature name, dict input key -> numpy array, row_format bool).

    Raises:
      ServingError: malformed JSON, unknown signature or input, wrong dtype or shape,
        empty or too large a batch.
    """
    try:
        request = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
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
    """The :predict response document.

    Args:
      outputs: dict output key -> numpy array [N, ...].
      row_format: the request used 'instances' (-> "predictions") rather than 'inputs' (-> "outputs").

    Returns:
      {"predictions": ...} or {"outputs": ...}; a single output is not keyed by name.
    """
    columns = {key: _jsonable(key, np.asarray(value)) for key, value in outputs.items()}
    if not row_format:
        return {"outputs": next(iter(columns.values())) if len(columns) == 1 else columns}
    if len(columns) == 1:
        return {"predictions": next(iter(columns.values()))}
    return {"predictions": [dict(zip(columns, row)) for row in zip(*columns.values())]}


def status_document(states):
    """GetModelStatusResponse as JSON.

    Args:
      states: dict version (int) -> (state, error message or "").

    Returns:
      {"model_version_status": [{"version": "3", "state": "AVAILABLE", "status": {...}}, ...]},
      newest version first.
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


class ServedVersion:
    """One loaded SavedModel version: its signatures (descriptions and callables)."""

    def __init__(self, version, export_dir):
        self.version = version
        self.signatures = read_signatures(export_dir)
        self._functions = tf.saved_model.load(export_dir).signatures

    def predict(self, signature_name, inputs):
        """Run a signature on numpy inputs; returns dict output key -> numpy array.

        Raises:
          ServingError: TensorFlow rejected the inputs (an invalid argument).
        """
        try:
            outputs = self._functions[signature_name](**inputs)
        except (tf.errors.InvalidArgumentError, TypeError, ValueError) as e:
            raise ServingError(f"{type(e).__name__}: {e}") from None
        return {key: value.numpy() for key, value in outputs.items()}


class ModelRepository:
    """The newest version of one model under a base path, reloaded as versions come and go.

    Like TF Serving's default "latest" policy, only the highest integer version with a
    saved_model.pb is served; versions seen before and since replaced report state END.

    Args:
      model_name: name in the URL.
      base_path: directory of integer version directories.
    """

    def __init__(self, model_name, base_path):
        self.model_name = model_name
        self.base_path = base_path
        self._lock = threading.Lock()
        self._served = None
        self._states = {}  # version -> (state, error message)

    @property
    def version(self):
        """The version being served, or None."""
        with self._lock:
            return self._served.version if self._served else None

    def poll(self):
        """Load the newest complete version if it is not the one served. Returns the served version."""
        candidates = [v for v in versions(self.base_path)
                      if os.path.isfile(os.path.join(self.base_path, str(v), "saved_model.pb"))
                      and self._states.get(v, (None, ""))[1] == ""]
        newest = candidates[-1] if candidates else None
        served = self._served.version if self._served else None
        if newest is None or newest == served:
            return served
        try:
            loaded = ServedVersion(newest, os.path.join(self.base_path, str(newest)))
        except Exception as e:  # noqa: BLE001 - a broken export must not stop the server
            logging.error("cannot load %s version %d: %s", self.model_name, newest, e)
            with self._lock:
                self._states[newest] = (END, f"failed to load: {e}")
            return served
        with self._lock:
            if served is not None:
                self._states[served] = (END, "")
            self._states[newest] = (AVAILABLE, "")
            self._served = loaded
        logging.info("serving %s version %d", self.model_name, newest)
        return newest

    def get(self, model, version):
        """The served version for a request; ServingError 404 if there is none that matches."""
        if model != self.model_name:
            raise ServingError(f"Servable not found for request: "
                               f"{f'Specific({model}, {version})' if version is not None else f'Latest({model})'}",
                               http.HTTPStatus.NOT_FOUND)
        with self._lock:
            served = self._served
        if served is None or version not in (None, served.version):
            request = f"Specific({model}, {version})" if version is not None else f"Latest({model})"
            raise ServingError(f"Servable not found for request: {request}", http.HTTPStatus.NOT_FOUND)
        return served

    def status(self, model, version):
        """The status document for all versions, or for one."""
        with self._lock:
            states = dict(self._states)
        if model != self.model_name or not states:
            raise ServingError(f"Could not find any versions of model {model}", http.HTTPStatus.NOT_FOUND)
        if version is not None:
            if version not in states:
                raise ServingError(f"Could not find version {version} of model {model}", http.HTTPStatus.NOT_FOUND)
            states = {version: states[version]}
        return status_document(states)


def handle(repository, method, path, body, max_batch_size):
    """Answer one request.

    Returns:
      (HTTP status, JSON-able document).
    """
    try:
        route = parse_route(method, path)
        if route.kind == "status":
            return 200, repository.status(route.model, route.version)
        served = repository.get(route.model, route.version)
        if route.kind == "metadata":
            return 200, metadata_document(route.model, served.version, served.signatures)
        name, inputs, row_format = parse_predict_request(body, served.signatures, max_batch_size)
        return 200, predict_response(served.predict(name, inputs), row_format)
    except ServingError as e:
        return e.status, error_document(e.message)
    except Exception as e:  # noqa: BLE001 - answer in the API's format and keep serving
        logging.exception("internal error on %s %s", method, path)
        return 500, error_document(f"internal error: {type(e).__name__}: {e}")


class ModelServer(http.server.ThreadingHTTPServer):
    """ThreadingHTTPServer plus a thread that polls the repository for new versions.

    Args:
      address: (host, port).
      handler: request handler class.
      repository: ModelRepository to poll.
      poll_seconds: interval of the version-directory scan (<= 0 disables it).
    """

    daemon_threads = True

    def __init__(self, address, handler, repository, poll_seconds):
        super().__init__(address, handler)
        self._stop = threading.Event()
        if poll_seconds > 0:
            threading.Thread(target=self._poll, args=(repository, poll_seconds), name="version-poller",
                             daemon=True).start()

    def _poll(self, repository, poll_seconds):
        while not self._stop.wait(poll_seconds):
            repository.poll()

    def shutdown(self):
        """Stop serving and polling."""
        self._stop.set()
        super().shutdown()


def make_server(repository, host="127.0.0.1", port=8501, max_batch_size=64, max_request_bytes=8 << 20,
                poll_seconds=1.0):
    """A threaded HTTP server answering the TF Serving REST API for `repository`.

    Args:
      repository: ModelRepository (polled once here, then every `poll_seconds`).
      host: interface to bind; 127.0.0.1 keeps the server private to this machine.
      port: TCP port (0 picks a free one; see `server.server_address`).
      max_batch_size: largest batch per request.
      max_request_bytes: largest request body; larger ones get 413 without being read.
      poll_seconds: interval of the version-directory scan (<= 0 disables it).

    Returns:
      A ModelServer; call `serve_forever()`, and `shutdown()` to stop it.
    """
    repository.poll()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: one connection for many requests
        timeout = 60  # a client that stops sending must not hold a thread forever

        def _send(self, status, document):
            data = json.dumps(document).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._send(*handle(repository, "GET", self.path, b"", max_batch_size))

        def do_POST(self):
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                self.close_connection = True
                return self._send(411, error_document("a Content-Length header is required"))
            if int(length) > max_request_bytes:
                # The body stays unread, so the connection cannot be reused.
                self.close_connection = True
                return self._send(413, error_document(
                    f"request body of {length} bytes exceeds the limit of {max_request_bytes}"))
            self._send(*handle(repository, "POST", self.path, self.rfile.read(int(length)), max_batch_size))

        def log_message(self, fmt, *args):
            logging.info("%s %s", self.address_string(), fmt % args)

    return ModelServer((host, port), Handler, repository, poll_seconds)
