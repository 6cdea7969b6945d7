#!/usr/bin/env python3
"""A small REST client for exported progan_tf generators; Python standard library only.

Works against tensorflow/serving and progan-serve alike (both speak the TF Serving
REST API):

  python export/client.py --model=progan --seeds=1,2,3 --out_dir=out
      generate_png signature: the server encodes the PNGs
  python export/client.py --model=progan --random=4 --out_dir=out
  python export/client.py --model=progan --latents=latents.json --out_dir=out
      serving_default signature: float images in [0, 1], encoded to PNG here
      (latents.json: a JSON list of latent vectors)
"""
import argparse
import base64
import json
import os
import random
import struct
import sys
import urllib.error
import urllib.request
import zlib


def predict(server, model, signature, instances, version=None, timeout=300):
    """POST a row-format :predict request; returns the "predictions" list.

    Raises:
      RuntimeError: the server answered with an error document.
    """
    path = f"/v1/models/{model}" + (f"/versions/{version}" if version else "") + ":predict"
    body = json.dumps({"signature_name": signature, "instances": instances}).encode("utf-8")
    request = urllib.request.Request(server.rstrip("/") + path, data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())["predictions"]
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"HTTP {e.code}: {json.loads(e.read()).get('error', '')}") from None


def latent_size(server, model, version=None, timeout=30):
    """The latent size from the model's metadata (serving_default's input shape)."""
    path = f"/v1/models/{model}" + (f"/versions/{version}" if version else "") + "/metadata"
    with urllib.request.urlopen(server.rstrip("/") + path, timeout=timeout) as response:
        metadata = json.loads(response.read())
    latents = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]["latents"]
    return int(latents["tensor_shape"]["dim"][1]["size"])


def encode_png(image):
    """A PNG file (bytes) of an image given as nested lists [H][W][C] of floats in [0, 1]."""
    height, width, channels = len(image), len(image[0]), len(image[0][0])
    color_type = {1: 0, 3: 2, 4: 6}[channels]  # grayscale, RGB, RGBA

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(round(min(max(v, 0.0), 1.0) * 255) for pixel in row for v in pixel)
                    for row in image)  # filter byte 0 ("none") before every row
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="http://127.0.0.1:8501", help="REST endpoint of the model server")
    parser.add_argument("--model", required=True, help="model name")
    parser.add_argument("--version", type=int, help="model version (default: the newest)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--seeds", help="comma-separated int64 seeds (generate_png signature)")
    source.add_argument("--latents", help="JSON file with a list of latent vectors (serving_default)")
    source.add_argument("--random", type=int, help="this many random latents (serving_default)")
    parser.add_argument("--rng_seed", type=int, default=0, help="seed of the --random latents")
    parser.add_argument("--out_dir", default="client_out", help="directory for the PNG files")
    args = parser.parse_args(argv)
    if args.random is not None and args.random < 1:
        parser.error(f"--random={args.random} must be at least 1")

    os.makedirs(args.out_dir, exist_ok=True)
    if args.seeds is not None:
        try:
            seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError:
            parser.error(f"--seeds={args.seeds!r} is not a comma-separated list of integers")
        files = [base64.b64decode(p["b64"]) for p in
                 predict(args.server, args.model, "generate_png", seeds, args.version)]
        names = [f"seed{seed:04d}.png" for seed in seeds]
    else:
        if args.latents:
            with open(args.latents, encoding="utf-8") as f:
                latents = json.load(f)
        else:
            rng = random.Random(args.rng_seed)
            size = latent_size(args.server, args.model, args.version)
            latents = [[rng.gauss(0.0, 1.0) for _ in range(size)] for _ in range(args.random)]
        files = [encode_png(image) for image in
                 predict(args.server, args.model, "serving_default", latents, args.version)]
        names = [f"latent{i:04d}.png" for i in range(len(files))]
    for name, data in zip(names, files):
        with open(os.path.join(args.out_dir, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(files)} PNG files to {args.out_dir}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, OSError) as e:
        sys.exit(f"client.py: error: {e}")
