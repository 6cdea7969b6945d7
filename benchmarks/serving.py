"""Serving benchmark: export time, :predict images/s and p50/p99 latency at batch 1 and 16, and load.

  python benchmarks/serving.py                          # demo 32x32 G and the paper's 1024x1024 G
  python benchmarks/serving.py --sizes=32 --requests=50 --load_clients=8

Each generator has random weights (speed does not depend on training). It is exported
with `export_generator`, served by `progan_tf.serving.server` on 127.0.0.1 in this process,
and called over HTTP by a sequential client, so a latency is what a client sees:
JSON encoding, the generator, PNG encoding and base64 included.

The load measurement (at the smallest size) runs --load_clients concurrent clients,
each either opening a new connection per request or keeping one alive, and reports
requests/s and p50/p99 latency for the status GET (HTTP alone) and a one-seed PNG.
"""
import http.client
import json
import os
import tempfile
import threading
import time
import urllib.request

import numpy as np
from absl import app, flags, logging

from progan_tf import export
from progan_tf.networks import NetworkConfig, build_generator
from progan_tf.serving.server import ModelRepository, make_server

# The demo network of configs/demo.flags, and the paper's 1024x1024 defaults.
NETWORKS = {32: NetworkConfig(resolution=32, latent_size=64, fmap_base=512, fmap_max=64), 1024: NetworkConfig()}
# (signature, input): PNGs for seeds at every size; float JSON only at 32, where it is small.
CASES = {32: ["generate_png", "serving_default"], 1024: ["generate_png"]}

flags.DEFINE_list("sizes", ["32", "1024"], "Resolutions to benchmark (32 = demo network, 1024 = paper network).")
flags.DEFINE_list("batches", ["1", "16"], "Batch sizes per request.")
flags.DEFINE_integer("requests", 30, "Timed requests per case at 32x32.")
flags.DEFINE_integer("requests_1024", 3, "Timed requests per case at 1024x1024 (seconds each on a CPU).")
flags.DEFINE_integer("load_clients", 4, "Concurrent clients of the load measurement.")
flags.DEFINE_integer("load_requests", 400, "Requests per load case, spread over the clients (0 = no load run).")
flags.DEFINE_string("output", "benchmarks/serving.json", "JSON file for the results.")

FLAGS = flags.FLAGS
# 127.0.0.1 only, whatever proxy the environment names.
LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def request_body(signature, batch, latent_size, rng):
    if signature == "serving_default":
        return {"instances": rng.normal(size=(batch, latent_size)).round(6).tolist()}
    return {"signature_name": signature, "instances": rng.integers(0, 2 ** 31, batch).tolist()}


def time_requests(url, signature, batch, latent_size, count):
    """Latencies (s) of `count` sequential :predict requests, after one untimed warm-up."""
    rng = np.random.default_rng(0)
    latencies = []
    for i in range(count + 1):
        data = json.dumps(request_body(signature, batch, latent_size, rng)).encode()
        start = time.perf_counter()
        with LOCAL.open(urllib.request.Request(url, data=data), timeout=3600) as response:
            predictions = json.loads(response.read())["predictions"]
        if i:
            latencies.append(time.perf_counter() - start)
        assert len(predictions) == batch
    return latencies


def load_client(port, method, path, body, count, keep_alive, latencies):
    """`count` sequential requests, on one kept-alive connection or a new one each; appends latencies (s)."""
    connection = None
    for _ in range(count):
        if connection is None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        start = time.perf_counter()  # a new connection's TCP handshake counts: the client waits for it
        connection.request(method, path, body)
        response = connection.getresponse()
        response.read()
        latencies.append(time.perf_counter() - start)
        assert response.status == 200, response.status
        if not keep_alive:
            connection.close()
            connection = None
    if connection is not None:
        connection.close()


def load_rows(port, resolution, clients, requests):
    """requests/s and p50/p99 latency under `clients` concurrent clients, new vs kept-alive connections."""
    cases = {"status": ("GET", "/v1/models/g", None),
             "generate_png": ("POST", "/v1/models/g:predict", json.dumps(
                 {"signature_name": "generate_png", "instances": [7]}).encode())}
    rows = []
    for request, (method, path, body) in cases.items():
        for keep_alive in (False, True):
            per_client = [[] for _ in range(clients)]
            threads = [threading.Thread(target=load_client, args=(port, method, path, body, requests // clients,
                                                                   keep_alive, latencies))
                       for latencies in per_client]
            start = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            seconds = time.perf_counter() - start
            latencies = np.concatenate(per_client)
            rows.append({"resolution": resolution, "request": request, "connection": "keep-alive" if keep_alive
                         else "new", "clients": clients, "requests": len(latencies),
                         "requests_per_s": len(latencies) / seconds, "p50_ms": 1000 * np.percentile(latencies, 50),
                         "p99_ms": 1000 * np.percentile(latencies, 99)})
    return rows


def benchmark_size(resolution, batches, count, workdir, load_clients=0, load_requests=0):
    """Export and time one network, and measure it under load if `load_requests` > 0."""
    config = NETWORKS[resolution]
    gs = build_generator(config, resolution)
    start = time.perf_counter()
    export.export_generator(gs, config, os.path.join(workdir, str(resolution), "1"), {"benchmark": True})
    export_seconds = time.perf_counter() - start
    repository = ModelRepository("g", os.path.join(workdir, str(resolution)))
    server = make_server(repository, "127.0.0.1", 0, max_batch_size=max(batches),
                         max_request_bytes=64 << 20, poll_seconds=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1/models/g:predict"
    rows, loads = [], []
    try:
        for signature in CASES[resolution]:
            for batch in batches:
                latencies = np.array(time_requests(url, signature, batch, config.latent_size, count))
                rows.append({"resolution": resolution, "signature": signature, "batch": batch,
                             "requests": count, "images_per_s": batch * count / latencies.sum(),
                             "p50_ms": 1000 * np.percentile(latencies, 50),
                             "p99_ms": 1000 * np.percentile(latencies, 99)})
                print(format_row(rows[-1]), flush=True)
        if load_requests:
            loads = load_rows(server.server_address[1], resolution, load_clients, load_requests)
    finally:
        server.shutdown()
        server.server_close()
    return {"resolution": resolution, "parameters": gs.count_params(), "export_seconds": export_seconds}, rows, loads


def format_row(row):
    return (f"{row['resolution']:>5}  {row['signature']:<16} {row['batch']:>5}  {row['requests']:>8}  "
            f"{row['images_per_s']:>9.2f}  {row['p50_ms']:>9.1f}  {row['p99_ms']:>9.1f}")


def format_load_row(row):
    return (f"{row['resolution']:>5}  {row['request']:<14} {row['connection']:<11} {row['clients']:>7}  "
            f"{row['requests']:>8}  {row['requests_per_s']:>10.1f}  {row['p50_ms']:>8.2f}  {row['p99_ms']:>8.2f}")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # one access-log line per request would bury the table
    sizes = [int(s) for s in FLAGS.sizes]
    batches = [int(b) for b in FLAGS.batches]
    unknown = set(sizes) - set(NETWORKS)
    if unknown:
        raise app.UsageError(f"--sizes: no benchmark network for {sorted(unknown)}; choose from {sorted(NETWORKS)}")
    if FLAGS.load_requests and not 1 <= FLAGS.load_clients <= FLAGS.load_requests:
        raise app.UsageError(f"--load_clients={FLAGS.load_clients} must be between 1 and --load_requests")
    print(f"{'res':>5}  {'signature':<16} {'batch':>5}  {'requests':>8}  {'images/s':>9}  {'p50 ms':>9}  "
          f"{'p99 ms':>9}")
    exports, rows, loads = [], [], []
    with tempfile.TemporaryDirectory() as workdir:
        for resolution in sizes:
            count = FLAGS.requests_1024 if resolution == 1024 else FLAGS.requests
            load_requests = FLAGS.load_requests if resolution == min(sizes) else 0  # seconds per request at 1024
            size_export, size_rows, size_loads = benchmark_size(resolution, batches, count, workdir, FLAGS.load_clients,
                                                                load_requests)
            exports.append(size_export)
            rows.extend(size_rows)
            loads.extend(size_loads)
    if loads:
        print(f"\n{'res':>5}  {'request':<14} {'connection':<11} {'clients':>7}  {'requests':>8}  {'requests/s':>10}  "
              f"{'p50 ms':>8}  {'p99 ms':>8}")
        for row in loads:
            print(format_load_row(row))
    for e in exports:
        print(f"export {e['resolution']}x{e['resolution']} ({e['parameters'] / 1e6:.1f} M parameters): "
              f"{e['export_seconds']:.1f} s")
    result = {"cpu_count": os.cpu_count(), "load_average_1m": os.getloadavg()[0], "exports": exports,
              "predict": rows, "load": loads}
    with open(FLAGS.output, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
