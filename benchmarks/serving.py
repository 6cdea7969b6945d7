"""Serving benchmark: export time, and :predict images/s and p50/p99 latency at batch 1 and 16.

  python benchmarks/serving.py                          # demo 32x32 G and the paper's 1024x1024 G
  python benchmarks/serving.py --sizes=32 --requests=50

Each generator has random weights (speed does not depend on training). It is exported
with `export_generator`, served by `progan_tf.serving` on 127.0.0.1 in this process,
and called over HTTP by a sequential client, so a latency is what a client sees:
JSON encoding, the generator, PNG encoding and base64 included.
"""
import json
import os
import tempfile
import threading
import time
import urllib.request

import numpy as np
from absl import app, flags, logging

from progan_tf import export, serving
from progan_tf.networks import NetworkConfig, build_generator

# The demo network of configs/demo.flags, and the paper's 1024x1024 defaults.
NETWORKS = {32: NetworkConfig(resolution=32, latent_size=64, fmap_base=512, fmap_max=64), 1024: NetworkConfig()}
# (signature, input): PNGs for seeds at every size; float JSON only at 32, where it is small.
CASES = {32: ["generate_png", "serving_default"], 1024: ["generate_png"]}

flags.DEFINE_list("sizes", ["32", "1024"], "Resolutions to benchmark (32 = demo network, 1024 = paper network).")
flags.DEFINE_list("batches", ["1", "16"], "Batch sizes per request.")
flags.DEFINE_integer("requests", 30, "Timed requests per case at 32x32.")
flags.DEFINE_integer("requests_1024", 3, "Timed requests per case at 1024x1024 (seconds each on a CPU).")
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


def benchmark_size(resolution, batches, count, workdir):
    config = NETWORKS[resolution]
    gs = build_generator(config, resolution)
    start = time.perf_counter()
    export.export_generator(gs, config, os.path.join(workdir, str(resolution), "1"), {"benchmark": True})
    export_seconds = time.perf_counter() - start
    repository = serving.ModelRepository("g", os.path.join(workdir, str(resolution)))
    server = serving.make_server(repository, "127.0.0.1", 0, max_batch_size=max(batches),
                                 max_request_bytes=64 << 20, poll_seconds=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1/models/g:predict"
    rows = []
    try:
        for signature in CASES[resolution]:
            for batch in batches:
                latencies = np.array(time_requests(url, signature, batch, config.latent_size, count))
                rows.append({"resolution": resolution, "signature": signature, "batch": batch,
                             "requests": count, "images_per_s": batch * count / latencies.sum(),
                             "p50_ms": 1000 * np.percentile(latencies, 50),
                             "p99_ms": 1000 * np.percentile(latencies, 99)})
                print(format_row(rows[-1]), flush=True)
    finally:
        server.shutdown()
        server.server_close()
    return {"resolution": resolution, "parameters": gs.count_params(), "export_seconds": export_seconds}, rows


def format_row(row):
    return (f"{row['resolution']:>5}  {row['signature']:<16} {row['batch']:>5}  {row['requests']:>8}  "
            f"{row['images_per_s']:>9.2f}  {row['p50_ms']:>9.1f}  {row['p99_ms']:>9.1f}")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # one access-log line per request would bury the table
    sizes = [int(s) for s in FLAGS.sizes]
    batches = [int(b) for b in FLAGS.batches]
    unknown = set(sizes) - set(NETWORKS)
    if unknown:
        raise app.UsageError(f"--sizes: no benchmark network for {sorted(unknown)}; choose from {sorted(NETWORKS)}")
    print(f"{'res':>5}  {'signature':<16} {'batch':>5}  {'requests':>8}  {'images/s':>9}  {'p50 ms':>9}  "
          f"{'p99 ms':>9}")
    exports, rows = [], []
    with tempfile.TemporaryDirectory() as workdir:
        for resolution in sizes:
            count = FLAGS.requests_1024 if resolution == 1024 else FLAGS.requests
            size_export, size_rows = benchmark_size(resolution, batches, count, workdir)
            exports.append(size_export)
            rows.extend(size_rows)
    for e in exports:
        print(f"export {e['resolution']}x{e['resolution']} ({e['parameters'] / 1e6:.1f} M parameters): "
              f"{e['export_seconds']:.1f} s")
    result = {"cpu_count": os.cpu_count(), "load_average_1m": os.getloadavg()[0], "exports": exports,
              "predict": rows}
    with open(FLAGS.output, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
