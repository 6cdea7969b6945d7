"""progan_tf.serving.server: the REST API over HTTP, on 127.0.0.1 only.

Besides the API itself: every answer is JSON (http.server's own refusals included), a bad
Content-Length never hangs a connection, keep-alive is not slower than new connections,
and a bounded fuzz of malformed requests gets 4xx answers only.
"""
import base64
import collections
import http.client
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import psutil
import pytest
import tensorflow as tf
from PIL import Image

from progan_tf import export
from progan_tf.serving.server import ModelRepository, make_server
from test_export import TINY, tiny_generator

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# No proxy from the environment may see (or forward) the test traffic: 127.0.0.1 directly.
LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))
NO_PROXY_ENV = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
MAX_BATCH, MAX_BYTES = 4, 64 << 10  # the limits of the servers below


def start_server(repository, **options):
    """A server on 127.0.0.1 (a free port) in a daemon thread, with this module's limits."""
    httpd = make_server(repository, "127.0.0.1", 0, max_batch_size=MAX_BATCH, max_request_bytes=MAX_BYTES, **options)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("serving") / "tiny"
    gs = tiny_generator()
    export.export_generator(gs, TINY, base / "1", {"images_seen": 1})
    repository = ModelRepository("tiny", str(base))
    httpd = start_server(repository, poll_seconds=0.1)
    # A server with a short timeout (same model) for clients that stop sending.
    impatient = start_server(repository, poll_seconds=0, timeout_seconds=2)
    yield {"url": f"http://127.0.0.1:{httpd.server_address[1]}", "port": httpd.server_address[1],
           "impatient_port": impatient.server_address[1], "base": base, "gs": gs,
           "signatures": tf.saved_model.load(str(base / "1")).signatures}
    for running in (httpd, impatient):
        running.shutdown()
        running.server_close()


def call(server, path, document=None, raw=None):
    """(HTTP status, JSON body) of a GET (no document) or POST to 127.0.0.1."""
    data = raw if raw is not None else (None if document is None else json.dumps(document).encode())
    request = urllib.request.Request(server["url"] + path, data=data)
    try:
        with LOCAL.open(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


Answer = collections.namedtuple("Answer", "status headers body")


def http_request(method, path, body=b"", headers=(), length="auto"):
    """The bytes of one HTTP/1.1 request; Content-Length is the body's unless `length` says otherwise."""
    if length == "auto":
        length = len(body) if body or method == "POST" else None
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    lines += [] if length is None else [f"Content-Length: {length}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def exchange(sock, data, method="GET", half_close=False):
    """Send raw bytes on a socket to 127.0.0.1 and read one answer (no body for HEAD)."""
    sock.sendall(data)
    if half_close:
        sock.shutdown(socket.SHUT_WR)
    response = http.client.HTTPResponse(sock, method=method)
    response.begin()
    answer = Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    response.close()
    return answer


def connect(port, timeout=30):
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def assert_json_error(answer, statuses, method="GET"):
    """A 4xx answer from `statuses` whose body is {"error": "..."} (HEAD: the headers of one)."""
    assert answer.status in statuses, answer
    assert answer.headers["content-type"] == "application/json", answer
    if method == "HEAD":
        assert answer.body == b"" and int(answer.headers["content-length"]) > 0, answer
    else:
        assert int(answer.headers["content-length"]) == len(answer.body), answer
        error = json.loads(answer.body)["error"]
        assert isinstance(error, str) and error and "\n" not in error, answer


def no_tracebacks(caplog, capfd):
    """Neither a logged exception nor a traceback on stderr (socketserver prints those itself)."""
    logged = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not logged, logged[0].getMessage()
    assert "Traceback" not in capfd.readouterr().err


# --- the API ------------------------------------------------------------------------------------

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


# --- robustness: each test caught a reported bug before its fix ---------------------------------

PREDICT = "/v1/models/tiny:predict"
SEED_BODY = b'{"signature_name": "generate", "instances": [1]}'


@pytest.mark.parametrize("body", [
    b'{"instances": ' + b"[" * 1000 + b"0" + b"]" * 1000 + b"}",
    b"[" * 30_000 + b"]" * 30_000,  # json.loads alone raises RecursionError
    b'{"instances": [' + b'{"a": ' * 5000 + b"0" + b"}" * 5000 + b"]}",
], ids=["arrays_1000", "arrays_30000", "objects_5000"])
def test_deeply_nested_json_is_400_json(server, body, caplog, capfd):
    with connect(server["port"]) as sock:
        answer = exchange(sock, http_request("POST", PREDICT, body), "POST")
    assert_json_error(answer, {400})
    assert "nests arrays and objects" in json.loads(answer.body)["error"]
    no_tracebacks(caplog, capfd)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "CONNECT", "BREW"])
@pytest.mark.parametrize("path", ["/v1/models/tiny", PREDICT])
def test_other_methods_get_405_json_and_keep_the_connection(server, method, path):
    with connect(server["port"]) as sock:
        assert_json_error(exchange(sock, http_request(method, path), method), {405}, method)
        # The connection still works: a HEAD answer had no body to be misread as the next answer.
        assert exchange(sock, http_request("GET", "/v1/models/tiny")).status == 200


@pytest.mark.parametrize("data, half_close, status", [
    (http_request("POST", PREDICT, SEED_BODY, length=None), False, 411),
    (http_request("POST", PREDICT, SEED_BODY, length=-5), False, 400),
    (http_request("POST", PREDICT, SEED_BODY, length="12abc"), False, 400),
    (http_request("POST", PREDICT, SEED_BODY, headers=["Content-Length: 5"]), False, 400),
    (http_request("POST", PREDICT, b"{}", length=100), True, 400),
    (http_request("POST", PREDICT, b"{}", length=100), False, 400),
    (http_request("POST", PREDICT, length=MAX_BYTES + 1), False, 413),
    (http_request("POST", PREDICT, length=10 ** 30), False, 413),
    (http_request("POST", PREDICT, b"5\r\n{}{}{\r\n", ["Transfer-Encoding: chunked"], length=None), False, 411),
], ids=["missing", "negative", "not_a_number", "two_values", "longer_than_the_body_half_closed",
        "longer_than_the_body_silent", "over_max_request_bytes", "over_10_to_the_30", "chunked"])
def test_bad_content_length_is_4xx_json_without_a_hang(server, data, half_close, status, caplog, capfd):
    # The impatient server gives up on a silent client after 2 s; this client waits 10 s at most.
    with connect(server["impatient_port"], timeout=10) as sock:
        answer = exchange(sock, data, "POST", half_close)
    assert_json_error(answer, {status})
    assert answer.headers["connection"] == "close"  # the next request's start is unknown
    no_tracebacks(caplog, capfd)


def test_a_body_far_over_the_limit_still_gets_its_413(server):
    # Closing a socket with unread input resets the connection: a client still sending its
    # body would see "connection reset" instead of the answer, unless the server reads on.
    with connect(server["port"]) as sock:
        answer = exchange(sock, http_request("POST", PREDICT, b" " * (16 << 20)), "POST")
    assert_json_error(answer, {413})


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_latents_are_400(server, value):
    row = ", ".join([value] + ["0"] * (TINY.latent_size - 1))
    status, document = call(server, PREDICT, raw=f'{{"instances": [[{row}]]}}'.encode())
    assert status == 400 and "NaN, Infinity" in document["error"]


@pytest.mark.parametrize("data, status", [
    (b"\x00\x01 garbage\r\n\r\n", 400),
    (b"GET /v1/models/tiny\r\n", 400),  # HTTP/0.9, which http.server answers without a status line
    (b"GET /v1/models/tiny HTTP/one\r\n\r\n", 400),
    (b"GET /v1/models/tiny HTTP/2.0\r\n\r\n", 505),
    (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414),
    (http_request("GET", "/v1/models/tiny", headers=["X-Big: " + "b" * 70_000]), 431),
    (http_request("GET", "/v1/models/tiny", headers=[f"X-{i}: {i}" for i in range(101)]), 431),
], ids=["garbage", "http_0_9", "bad_version", "http_2", "long_line", "long_header", "many_headers"])
def test_http_server_refusals_are_json_too(server, data, status):
    with connect(server["port"]) as sock:
        assert_json_error(exchange(sock, data, half_close=True), {status})


def test_keep_alive_is_not_slower_than_new_connections(server):
    # It was 48 ms against 4.6 ms: Nagle's algorithm held the body back until the client's
    # delayed ACK of the headers. Interleaved, so background load hits both sides alike.
    def timed(connection):
        start = time.perf_counter()
        connection.request("POST", PREDICT, SEED_BODY)
        response = connection.getresponse()
        response.read()
        assert response.status == 200
        return time.perf_counter() - start

    kept = http.client.HTTPConnection("127.0.0.1", server["port"], timeout=30)
    timed(kept)  # connects
    keep_alive, fresh = [], []
    for _ in range(30):
        keep_alive.append(timed(kept))
        connection = http.client.HTTPConnection("127.0.0.1", server["port"], timeout=30)
        fresh.append(timed(connection))
        connection.close()
    kept.close()
    assert statistics.median(keep_alive) <= statistics.median(fresh) * 1.5 + 0.002, (keep_alive, fresh)


# --- fuzz ---------------------------------------------------------------------------------------

FUZZ_SEED = int(os.environ.get("PROGAN_SERVING_FUZZ_SEED", "20240229"))
# The default takes about 10 s on 2 busy cores; PROGAN_SERVING_FUZZ_REQUESTS=30000 (3 min) is a long run.
FUZZ_REQUESTS = int(os.environ.get("PROGAN_SERVING_FUZZ_REQUESTS", "2000"))

Case = collections.namedtuple("Case", "kind data method statuses check fresh half_close",
                              defaults=(None, False, False))
Case.__doc__ = """One fuzz request: raw bytes and the statuses it may get (check: the model's answer, for 200).
fresh: on a connection of its own (it is not a well-framed request); half_close: then shut the write side."""


def post(body, path=PREDICT, **options):
    return http_request("POST", path, body if isinstance(body, bytes) else json.dumps(body).encode(), **options)


def good_latents(rng, signatures):
    latents = rng.normal(size=(rng.integers(1, MAX_BATCH + 1), TINY.latent_size)).astype(np.float32)
    rows = bool(rng.integers(2))

    def check(document):
        expected = signatures["serving_default"](latents=tf.constant(latents))["images"].numpy()
        np.testing.assert_allclose(document["predictions" if rows else "outputs"], expected, atol=1e-6)
    document = {"instances": latents.tolist()} if rows else {"inputs": {"latents": latents.tolist()}}
    return Case("good latents", post(document), "POST", {200}, check)


def good_seeds(rng, signatures):
    seeds = rng.integers(-2 ** 63, 2 ** 63 - 1, size=rng.integers(1, MAX_BATCH + 1), endpoint=True)
    name = ["generate", "generate_png"][rng.integers(2)]

    def check(document):
        expected = signatures[name](seeds=tf.constant(seeds, tf.int64))
        if name == "generate":
            np.testing.assert_allclose(document["predictions"], expected["images"].numpy(), atol=1e-6)
        else:
            assert [base64.b64decode(p["b64"]) for p in document["predictions"]] == list(expected["png_bytes"].numpy())
    half_close = rng.random() < 0.1  # a client that shuts its side after the request still gets the answer
    return Case(f"good {name}", post({"signature_name": name, "instances": seeds.tolist()}), "POST", {200}, check,
                fresh=half_close, half_close=half_close)


def good_get(rng, signatures):
    path = ["/v1/models/tiny", "/v1/models/tiny/versions/1", "/v1/models/tiny/metadata",
            "/v1/models/tiny/versions/1/metadata"][rng.integers(4)]

    def check(document):
        if path.endswith("metadata"):
            assert set(document["metadata"]["signature_def"]["signature_def"]) == set(export.SIGNATURES)
        else:
            assert document["model_version_status"][0]["state"] == "AVAILABLE"
    return Case("good GET", http_request("GET", path), "GET", {200}, check)


def random_bytes(rng, signatures):
    # The first byte is not white space: http.server closes on an empty request line without an answer.
    data = bytes([rng.integers(33, 127)]) + rng.bytes(int(rng.integers(0, 300)))
    return Case("random bytes", data, "GET", {400}, fresh=True, half_close=True)


def truncated_json(rng, signatures):
    body = json.dumps({"instances": rng.normal(size=(2, TINY.latent_size)).round(3).tolist()}).encode()
    return Case("truncated JSON", post(body[:rng.integers(len(body))]), "POST", {400})


def nested_json(rng, signatures):
    opener, closer = [(b"[", b"]"), (b'{"a": ', b"}")][rng.integers(2)]
    depth = int(rng.integers(64, MAX_BYTES // (len(opener) + len(closer)) - 20))  # the body within the limit
    return Case("nested JSON", post(b'{"instances": ' + opener * depth + b"0" + closer * depth + b"}"), "POST", {400})


def wrong_shape(rng, signatures):
    size = TINY.latent_size
    latents = [[[0.0] * (size + rng.choice([-1, 1]))], [0.0] * size, [[[0.0] * size]], [],
               [[0.0] * size] * (MAX_BATCH + 1), [[0.0] * size, [0.0]]][rng.integers(6)]
    return Case("wrong shape", post({"instances": latents}), "POST", {400})


def wrong_dtype(rng, signatures):
    value = ['"a"', "true", "null", "{}", '{"b64": "AAAA"}', '[1, "a"]'][rng.integers(6)]
    if rng.integers(2):
        return Case("wrong dtype", post(f'{{"instances": [[{value}{", 0" * (TINY.latent_size - 1)}]]}}'.encode()),
                    "POST", {400})
    return Case("wrong dtype", post(f'{{"signature_name": "generate", "instances": [{value}]}}'.encode()), "POST",
                {400})


def non_finite(rng, signatures):
    row = ["0"] * TINY.latent_size
    row[rng.integers(TINY.latent_size)] = ["NaN", "Infinity", "-Infinity", "1e999", "-1e400", "3.5e38"][rng.integers(6)]
    return Case("NaN/Inf latents", post(f'{{"inputs": [[{", ".join(row)}]]}}'.encode()), "POST", {400})


def bad_seeds(rng, signatures):
    seed = ["1.5", '"7"', str(2 ** 63), str(-2 ** 63 - 1), "true", "[1]", "1e3", str(10 ** 30)][rng.integers(8)]
    return Case("bad seeds", post(f'{{"signature_name": "generate_png", "instances": [1, {seed}]}}'.encode()),
                "POST", {400})


def bad_document(rng, signatures):
    body = [b"[1, 2]", b'"x"', b"null", b'{"instances": [1], "inputs": [1]}', b'{"signature_name": "nope", '
            b'"instances": [1]}', b'{"signature_name": 5, "instances": [1]}', b'{"extra": 1}', b"{}",
            b'{"instances": {"latents": 1}}', b"\xff\xfe{", "{\"instances\": \"\u00e9\"}".encode("utf-16")]
    return Case("bad document", post(body[rng.integers(len(body))]), "POST", {400})


def other_method(rng, signatures):
    method = ["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "CONNECT", "BREW", "get", "GET", "POST"][
        rng.integers(11)]
    # GET of :predict and POST of status are the wrong method too.
    path = {"GET": PREDICT, "POST": "/v1/models/tiny/metadata"}.get(method,
                                                                     [PREDICT, "/v1/models/tiny"][rng.integers(2)])
    return Case(f"method {method}", http_request(method, path, SEED_BODY if rng.integers(2) else b""), method, {405})


def bad_path(rng, signatures):
    path = ["/", "/v1/models/other", "/v1/models/tiny/versions/99", "/v1/models/tiny/versions/x",
            "/v1/models/tiny:classify", "/v2/models/tiny", "/v1/models/tiny/labels", "/v1/models/tiny/versions/-1",
            "/v1/models/tiny/versions/99999999999999999999", "/v1/models//metadata"][rng.integers(10)]
    method = "POST" if path.endswith(":classify") else "GET"
    return Case("bad path", http_request(method, path, SEED_BODY if method == "POST" else b""), method, {404})


def bad_length(rng, signatures):
    choice = rng.integers(7)
    if choice == 0:
        return Case("no Content-Length", post(SEED_BODY, length=None), "POST", {411})
    if choice == 1:
        return Case("chunked", post(b"2\r\n{}\r\n0\r\n\r\n", headers=["Transfer-Encoding: chunked"], length=None),
                    "POST", {411})
    if choice == 2:  # longer than the body, then the client shuts its side
        return Case("short body", post(SEED_BODY, length=len(SEED_BODY) + rng.integers(1, 1000)), "POST", {400},
                    fresh=True, half_close=True)
    if choice == 3:
        length = int(rng.integers(MAX_BYTES + 1, 2 ** 62))
        return Case("Content-Length over the limit", post(b"", length=length), "POST", {413})
    value = ["-1", "1.5", "abc", "0x10", "+48", "", "4 8", "²"][rng.integers(8)] if choice < 6 else None
    headers = [f"Content-Length: {value}"] if value is not None else ["Content-Length: 1", "Content-Length: 2"]
    return Case("bad Content-Length", post(SEED_BODY, headers=headers, length=None), "POST", {400})


def huge(rng, signatures):
    choice = rng.integers(4)
    if choice == 0:  # sent in full, though the server reads none of it
        return Case("huge body", post(b" " * int(rng.integers(MAX_BYTES + 1, 4 * MAX_BYTES))), "POST", {413},
                    fresh=True)
    if choice == 1:
        return Case("huge header", http_request("GET", "/v1/models/tiny", headers=["X: " + "x" * 70_000]), "GET",
                    {431}, fresh=True)
    if choice == 2:
        return Case("many headers", http_request("GET", "/v1/models/tiny", headers=[f"X-{i}: {i}" for i in range(200)]),
                    "GET", {431}, fresh=True)
    return Case("huge URL", http_request("GET", "/v1/models/" + "m" * 70_000), "GET", {414}, fresh=True)


def cut_short(rng, signatures):
    data = post(SEED_BODY)
    cut = int(rng.integers(1, data.index(b"\r\n\r\n")))  # inside the request line or the headers
    # Cut in the request line: a malformed line (400); in the headers: the length may be missing (411).
    return Case("cut short, half-closed", data[:cut], "POST", {400, 411}, fresh=True, half_close=True)


FUZZ_CASES = [(good_latents, 12), (good_seeds, 14), (good_get, 8), (random_bytes, 6), (truncated_json, 6),
              (nested_json, 5), (wrong_shape, 6), (wrong_dtype, 6), (non_finite, 6), (bad_seeds, 5),
              (bad_document, 5), (other_method, 6), (bad_path, 5), (bad_length, 8), (huge, 2), (cut_short, 4)]


def test_fuzz_bad_requests_get_4xx_json_and_good_ones_the_models_answer(server, caplog, capfd):
    seed = f"fuzz seed {FUZZ_SEED}, {FUZZ_REQUESTS} requests (PROGAN_SERVING_FUZZ_SEED / _REQUESTS change them)"
    with capfd.disabled():  # capfd holds the server's stderr; this goes to pytest's own capture (or -s)
        print(seed)
    rng = np.random.default_rng(FUZZ_SEED)
    makers, weights = zip(*FUZZ_CASES)
    statuses, kinds, failures = collections.Counter(), collections.Counter(), []
    process = psutil.Process()
    kept = connect(server["port"])  # one keep-alive connection for the well-framed requests
    for i in range(FUZZ_REQUESTS):
        if i == FUZZ_REQUESTS // 10:  # after warm-up: TensorFlow's first calls allocate for good
            rss_start = process.memory_info().rss
        case = makers[rng.choice(len(makers), p=np.array(weights) / sum(weights))](rng, server["signatures"])
        kinds[case.kind] += 1
        sock = connect(server["port"]) if case.fresh else kept
        answer = None
        try:
            answer = exchange(sock, case.data, case.method, case.half_close)
            statuses[answer.status] += 1
            if case.check:
                assert answer.status == 200, answer
                case.check(json.loads(answer.body))
            else:
                assert_json_error(answer, case.statuses, case.method)
        except (AssertionError, OSError, http.client.HTTPException) as e:
            failures.append(f"request {i} ({case.kind}): {type(e).__name__}: {str(e)[:300]}; sent {case.data[:100]!r}")
        if case.fresh:
            sock.close()
        elif answer is None or answer.headers.get("connection") == "close":
            kept.close()
            kept = connect(server["port"])
    kept.close()
    growth = process.memory_info().rss / rss_start - 1
    with capfd.disabled():
        print(f"fuzz: {sum(kinds.values())} requests, statuses {dict(sorted(statuses.items()))}, "
              f"RSS growth {growth:+.1%}\n  cases {dict(sorted(kinds.items()))}")
    assert not failures, f"{seed}: {len(failures)} failures; the first:\n" + "\n".join(failures[:5])
    assert max(statuses) < 500 and growth < 0.10
    no_tracebacks(caplog, capfd)


# --- last: it changes the served version ---------------------------------------------------------

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
