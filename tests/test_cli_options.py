"""The flags of a training configuration (cli/options.py): a flagfile resolves into the three configs."""
import json
import os

from conftest import REPO
from test_cli_train import _train


def test_dry_run_prints_the_resolved_options(tmp_path):
    proc = _train(["--flagfile=" + os.path.join(REPO, "configs", "celeba_hq_1024.flags"), "--data_dir=",
                   "--dry_run"], tmp_path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    options = json.loads(out[out.index("{"):])
    assert options["network"]["resolution"] == 1024 and options["network"]["fmap_max"] == 512
    assert options["schedule"]["total_kimg"] == 12000 and options["train"]["mirror"] is True
    assert dict(map(tuple, options["schedule"]["batch_sizes"]))[1024] == 4
