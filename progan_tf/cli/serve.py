"""progan-serve: answer the TF Serving REST API for an exported generator.

  progan-serve --model_base_path=export/models/celeba_hq --model_name=celeba_hq
  curl http://127.0.0.1:8501/v1/models/celeba_hq
  curl -d '{"signature_name": "generate_png", "instances": [1, 2]}' \\
       -X POST http://127.0.0.1:8501/v1/models/celeba_hq:predict

For development and small deployments; production serving is tensorflow/serving
(export/README.md). New version directories are picked up without a restart.
"""
import os
import re

from absl import logging

from progan_tf.cli.common import RunError, UsageError, check_at_least, define, run_app
from progan_tf.errors import ConfigError
from progan_tf.serving.server import ModelRepository, make_server

PROGRAM = "progan-serve"
_GROUP = "Serve"

define(_GROUP, "string", "model_base_path", None, "Directory of integer version directories (required).")
define(_GROUP, "string", "model_name", "", "Model name in the URL; default the basename of --model_base_path.")
define(_GROUP, "string", "host", "127.0.0.1", "Interface to bind; 0.0.0.0 exposes the server to the network.")
define(_GROUP, "integer", "port", 8501, "REST port (TF Serving's default); 0 picks a free port.")
define(_GROUP, "integer", "max_batch_size", 64, "Largest batch accepted per :predict request.")
define(_GROUP, "integer", "max_request_bytes", 8 << 20, "Largest request body accepted, in bytes.")
define(_GROUP, "float", "file_system_poll_wait_seconds", 1.0,
       "Interval between scans for new versions (TF Serving's flag name); 0 disables the scan.")


def options_from_flags(f):
    """Validate the flags (UsageError names a bad one) -> (model_name, model_base_path)."""
    if not f.model_base_path:
        raise UsageError("--model_base_path is required (a directory of integer versions, e.g. export/models/<name>)")
    if not os.path.isdir(f.model_base_path):
        raise UsageError(f"--model_base_path={f.model_base_path} is not a directory")
    name = f.model_name or os.path.basename(os.path.normpath(f.model_base_path))
    if not re.fullmatch(r"[^/:?\s]+", name):
        raise UsageError(f"--model_name={name!r} may not contain '/', ':', '?' or spaces")
    if not 0 <= f.port <= 65535:
        raise UsageError(f"--port={f.port} is not a TCP port (0..65535)")
    check_at_least(f, 1, "max_batch_size")
    check_at_least(f, 1024, "max_request_bytes")
    check_at_least(f, 0, "file_system_poll_wait_seconds")
    return name, f.model_base_path


def main(f):
    name, base_path = options_from_flags(f)
    logging.set_verbosity(logging.INFO)
    repository = ModelRepository(name, base_path)
    try:
        server = make_server(repository, f.host, f.port, f.max_batch_size, f.max_request_bytes,
                             f.file_system_poll_wait_seconds)
    except ConfigError as e:  # flags that parse but this machine refuses (a busy port, a foreign host): exit 1
        raise RunError(e.message(lambda field: f"--{field}")) from None
    host, port = server.server_address[:2]
    served = repository.version
    print(f"serving model {name!r} from {base_path} "
          f"({'version ' + str(served) if served else 'no version yet; waiting for one'}) "
          f"at http://{host}:{port}/v1/models/{name}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def run():
    run_app(PROGRAM, __doc__, main)


if __name__ == "__main__":
    run()
