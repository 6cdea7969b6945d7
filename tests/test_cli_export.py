"""progan-export as users run it (a fork, cli_processes.spawn): a run's Gs becomes the first version of an export."""
import pytest

from cli_processes import NO_PROXY_ENV, spawn
from progan_tf import export
from test_export import make_run, tiny_generator


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    run_dir = make_run(root / "run", tiny_generator(seed=3))
    export_cli = spawn("export", [f"--run_dir={run_dir}", f"--export_base={root / 'exported'}"], root, env=NO_PROXY_ENV)
    out, err = export_cli.communicate(timeout=180)
    done = {"export": (export_cli.returncode, out, err)}
    return {"root": root, "done": done}


def test_export_cli_writes_the_first_version(runs):
    code, out, err = runs["done"]["export"]
    assert code == 0, err
    version_dir = runs["root"] / "exported" / "1"
    assert str(version_dir) in out and (version_dir / "saved_model.pb").exists()
    assert (version_dir / export.KERAS_FILE).exists() and export.read_metadata(version_dir)["images_seen"] == 5000
