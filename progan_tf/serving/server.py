"""The HTTP side of `progan-serve`: a polling model repository and a threaded server.

`ModelRepository` serves the newest version under a base path, reloading as versions come and go (TF Serving's
default "latest" policy); `make_server` answers the REST API of `progan_tf.serving.codec` for it with `http.server`.
"""
import errno
import http
import http.server
import logging
import os
import re
import socket
import sys
import threading
import time

import tensorflow as tf

from progan_tf.errors import ConfigError
from progan_tf.export import versions
from progan_tf.serving.codec import (AVAILABLE, END, ServingError, encode_json, error_document, metadata_document,
                                     parse_predict_request, parse_route, predict_response, read_signatures,
                                     status_document)

# Before closing a connection, read what the client still sends for at most this long: closing
# a socket with unread input resets the connection, and the client could lose the answer.
LINGER_SECONDS = 2.0
_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() also takes "²"


class ServedVersion:
    """One loaded SavedModel version: its signatures (descriptions and callables)."""

    def __init__(self, version, export_dir):
        self.version = version
        self.signatures = read_signatures(export_dir)
        self._functions = tf.saved_model.load(export_dir).signatures

    def predict(self, signature_name, inputs):
        """Run a signature on numpy inputs -> dict output key -> numpy array; ServingError if TF rejects the inputs."""
        try:
            outputs = self._functions[signature_name](**inputs)
        except (tf.errors.InvalidArgumentError, TypeError, ValueError) as e:
            raise ServingError(f"{type(e).__name__}: {e}") from None
        return {key: value.numpy() for key, value in outputs.items()}


class ModelRepository:
    """The newest version of model `model_name` (as in the URL) under `base_path`, reloaded as versions come and go.

    Like TF Serving's default "latest" policy, only the highest integer version directory with a saved_model.pb
    is served; versions seen before and since replaced report state END.
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
        with self._lock:
            served = self._served
        if model != self.model_name or served is None or version not in (None, served.version):
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
    """Answer one request -> (HTTP status, JSON response body as bytes)."""
    try:
        route = parse_route(method, path)
        if route.kind == "status":
            return 200, encode_json(repository.status(route.model, route.version))
        served = repository.get(route.model, route.version)
        if route.kind == "metadata":
            return 200, encode_json(metadata_document(route.model, served.version, served.signatures))
        name, inputs, row_format = parse_predict_request(body, served.signatures, max_batch_size)
        return 200, encode_json(predict_response(served.predict(name, inputs), row_format))
    except ServingError as e:
        return e.status, encode_json(error_document(e.message))
    except Exception as e:  # noqa: BLE001 - answer in the API's format and keep serving
        logging.exception("internal error on %s %s", method, path)
        return 500, encode_json(error_document(f"internal error: {type(e).__name__}: {e}"))


def _shorten(text, size=40):
    """`text`, cut to `size` characters for an error message."""
    return text if len(text) <= size else text[:size] + "..."


class RequestHandler(http.server.BaseHTTPRequestHandler):
    """One client connection: every answer is JSON with a Content-Length, errors included.

    The repository and the limits come from the ModelServer (`self.server`)."""

    protocol_version = "HTTP/1.1"  # keep-alive: one connection for many requests
    # http.server writes the headers and the body separately; with Nagle's algorithm the body
    # waits for the ACK of the headers, which a keep-alive client delays by ~40 ms.
    disable_nagle_algorithm = True

    def setup(self):
        # A client that stops sending, between requests or mid-body, must not hold a thread forever.
        self.timeout = self.server.timeout_seconds
        super().setup()

    def __getattr__(self, name):
        # http.server looks up do_<METHOD> and answers a missing one with an HTML 501: instead every
        # method reaches _answer, where a PUT, HEAD or unknown token gets the JSON 405 (or 404) that
        # a GET of :predict gets.
        if name.startswith("do_"):
            return self._answer
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _answer(self):
        """Read the request's body and send the answer; every method and path comes here."""
        try:
            if self.request_version == "HTTP/0.9":
                raise ServingError("HTTP/0.9 requests are not supported; send 'METHOD PATH HTTP/1.1' and headers")
            body = self._read_body()
        except ServingError as e:
            self.close_connection = True  # where the next request starts is unknown
            return self._send(e.status, encode_json(error_document(e.message)))
        self._send(*handle(self.server.repository, self.command, self.path, body, self.server.max_batch_size))

    def _read_body(self):
        """The request body: exactly Content-Length bytes, each within the connection's timeout (b"" without one).

        ServingError 411 for a chunked body or a POST without Content-Length; 400 for a Content-Length that is not one
        non-negative integer, or a body shorter than it; 413 for a body over max_request_bytes (not read here).
        """
        limit = self.server.max_request_bytes
        if "Transfer-Encoding" in self.headers:
            raise ServingError("chunked request bodies are not supported; send the body with a Content-Length header",
                               http.HTTPStatus.LENGTH_REQUIRED)
        values = sorted({value.strip() for value in self.headers.get_all("Content-Length", [])})
        if not values:
            if self.command == "POST":
                raise ServingError("a POST needs a Content-Length header with the body's size in bytes",
                                   http.HTTPStatus.LENGTH_REQUIRED)
            return b""
        if len(values) > 1 or not _DIGITS.fullmatch(values[0]):
            raise ServingError(f"Content-Length {_shorten(', '.join(values))!r} is not one non-negative integer; "
                               f"send the body's size in bytes")
        digits = values[0].lstrip("0") or "0"
        if len(digits) > len(str(limit)) or int(digits) > limit:
            raise ServingError(f"the request body of {_shorten(digits)} bytes exceeds the limit of {limit} bytes; "
                               f"send fewer examples per request", http.HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        length = int(digits)
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            raise ServingError(f"the request body stopped for {self.timeout} s before the {length} bytes its "
                               f"Content-Length announces; send a Content-Length equal to the body's size") from None
        if len(body) < length:
            raise ServingError(f"the request body ended after {len(body)} of the {length} bytes its Content-Length "
                               f"announces; send a Content-Length equal to the body's size")
        return body

    def _send(self, status, data):
        """One response: headers, then the JSON body `data` (for HEAD the headers only)."""
        if self.request_version == "HTTP/0.9":
            # http.server writes no status line and no headers for HTTP/0.9, which it also assumes
            # of a request line it cannot parse: those clients get an HTTP/1.1 answer too.
            self.request_version = self.protocol_version
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_error(self, code, message=None, explain=None):
        """http.server's own refusals (malformed request line or headers: 400, 414, 431, 505) in JSON."""
        reason = message or self.responses.get(code, ("error",))[0]
        self.close_connection = True
        self._send(code, encode_json(error_document(
            f"{reason}{': ' + explain if explain else ''}; send an HTTP/1.1 request of the TF Serving REST API")))

    def log_message(self, fmt, *args):
        logging.info("%s %s", self.address_string(), fmt % args)


class ModelServer(http.server.ThreadingHTTPServer):
    """ThreadingHTTPServer of RequestHandlers, plus a thread that polls the repository for new versions.

    Binds `address` (host, port); `timeout_seconds` is the longest pause of a client sending a request, or between
    requests."""

    daemon_threads = True

    def __init__(self, address, repository, max_batch_size, max_request_bytes, timeout_seconds):
        super().__init__(address, RequestHandler)
        self.repository = repository
        self.max_batch_size = max_batch_size
        self.max_request_bytes = max_request_bytes
        self.timeout_seconds = timeout_seconds
        self._stop = threading.Event()

    def start_polling(self, poll_seconds):
        """Scan for new versions every `poll_seconds` in a thread, until `shutdown()`."""
        threading.Thread(target=self._poll, args=(poll_seconds,), name="version-poller", daemon=True).start()

    def _poll(self, poll_seconds):
        while not self._stop.wait(poll_seconds):
            self.repository.poll()

    def shutdown(self):
        """Stop serving and polling."""
        self._stop.set()
        super().shutdown()

    def handle_error(self, request, client_address):
        """A client that went away (reset, broken pipe, timeout) is one log line; anything else keeps its traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            logging.info("%s: connection lost: %s", client_address[0], error)
        else:
            logging.exception("internal error on a connection from %s", client_address[0])

    def shutdown_request(self, request):
        """Half-close, read what the client still sends (up to LINGER_SECONDS), then close.

        A client still sending when the server closes (a body over the limit, a request line
        cut short) would otherwise see "connection reset" instead of the JSON error.
        """
        try:
            request.shutdown(socket.SHUT_WR)
            request.settimeout(LINGER_SECONDS)
            deadline = time.monotonic() + LINGER_SECONDS
            while time.monotonic() < deadline and request.recv(1 << 16):
                pass
        except OSError:
            pass  # the client has gone: no answer is left to protect
        self.close_request(request)


def _bind_error(host, port, error):
    """The ConfigError (naming {host} or {port}) for an OSError of binding (host, port)."""
    if isinstance(error, socket.gaierror):
        return ConfigError("{host}={value!r} is not an IPv4 address or a name of this machine ({reason}); "
                           "use e.g. 127.0.0.1 or 0.0.0.0", value=host, reason=error.strerror)
    if error.errno == errno.EADDRINUSE:
        return ConfigError("{port}={value}: another program is listening on {address}; stop it or choose "
                           "another {port} (0 picks a free one)", value=port, address=f"{host}:{port}")
    if error.errno == errno.EADDRNOTAVAIL:
        return ConfigError("{host}={value!r} is not an address of this machine; use 127.0.0.1, 0.0.0.0 or "
                           "one of its own addresses", value=host)
    if error.errno == errno.EACCES:
        return ConfigError("{port}={value} needs privileges this process lacks; choose a {port} above 1023",
                           value=port)
    return ConfigError("cannot listen on {address}: {reason}; check {host} and {port}", address=f"{host}:{port}",
                       reason=error.strerror or error)


def make_server(repository, host="127.0.0.1", port=8501, max_batch_size=64, max_request_bytes=8 << 20,
                poll_seconds=1.0, timeout_seconds=60.0):
    """A ModelServer answering the TF Serving REST API for `repository`: call `serve_forever()`, `shutdown()` to stop.

    The repository is polled once here, then every `poll_seconds` (<= 0: never). host 127.0.0.1 keeps the server
    private to this machine; port 0 picks a free one (see `server.server_address`). Bodies over `max_request_bytes`
    get 413 and are never decoded. A client may pause `timeout_seconds` while sending a request (then 400) or
    between requests on a kept-alive connection (then it is closed). ConfigError, naming the {host} or {port} to
    change, if the address cannot be bound (port in use, not an address of this machine, unknown host).
    """
    try:  # binding first: a bad address fails before a model is loaded
        server = ModelServer((host, port), repository, max_batch_size, max_request_bytes, timeout_seconds)
    except OSError as e:
        raise _bind_error(host, port, e) from None
    repository.poll()
    if poll_seconds > 0:
        server.start_polling(poll_seconds)
    return server
