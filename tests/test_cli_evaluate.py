"""progan-eval as a subprocess: an export scored with SWD and MS-SSIM, and a bad flag named."""
import json
import subprocess
import sys


def test_progan_eval_scores_an_export(tmp_path):
    from progan_tf import networks
    from progan_tf.export import export_generator

    config = networks.NetworkConfig(resolution=8, latent_size=16, fmap_base=64, fmap_max=16)
    export_dir = tmp_path / "models" / "tiny" / "1"
    export_generator(networks.build_generator(config, 8), config, str(export_dir), {})
    out = tmp_path / "result.json"
    command = [sys.executable, "-m", "progan_tf.cli.evaluate", f"--model={tmp_path / 'models' / 'tiny'}",
               "--metrics=swd,msssim", "--num_images=64", "--synthetic_images=64", "--batch_size=32",
               f"--out={out}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["resolution"] == 8 and result["num_images"] == 64
    assert result["SWDx1e3_avg"] > 0 and 0 < result["MSSSIM"] <= 1
    assert "SWDx1e3_8" in done.stdout
    bad = subprocess.run(command[:4] + ["--metrics=swd,fid", "--inception_weights=/nowhere/inception.h5"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--inception_weights='/nowhere/inception.h5' does not exist" in bad.stderr
    assert bad.stderr.strip().endswith("pass its path with --inception_weights") and "Traceback" not in bad.stderr
