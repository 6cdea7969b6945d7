"""progan-eval as users run it (forks of one process, cli_processes.forked): an export scored with SWD and
MS-SSIM, and a bad flag named."""
import json

from cli_processes import forked


def test_progan_eval_scores_an_export(tmp_path):
    from progan_tf import networks
    from progan_tf.export import export_generator

    config = networks.NetworkConfig(resolution=8, latent_size=16, fmap_base=64, fmap_max=16)
    export_dir = tmp_path / "models" / "tiny" / "1"
    export_generator(networks.build_generator(config, 8), config, str(export_dir), {})
    out = tmp_path / "result.json"
    model = f"--model={tmp_path / 'models' / 'tiny'}"
    done = forked({"eval": ("evaluate", [model, "--metrics=swd,msssim", "--num_images=64", "--synthetic_images=64",
                                         "--batch_size=32", f"--out={out}"]),
                   "bad": ("evaluate", [model, "--metrics=swd,fid", "--inception_weights=/nowhere/inception.h5"])},
                  tmp_path, timeout=300)
    code, stdout, stderr = done["eval"]
    assert code == 0, stderr
    result = json.loads(out.read_text())
    assert result["resolution"] == 8 and result["num_images"] == 64
    assert result["SWDx1e3_avg"] > 0 and 0 < result["MSSSIM"] <= 1
    assert "SWDx1e3_8" in stdout
    code, _, stderr = done["bad"]
    assert code == 2 and "--inception_weights='/nowhere/inception.h5' does not exist" in stderr
    assert stderr.strip().endswith("pass its path with --inception_weights") and "Traceback" not in stderr
