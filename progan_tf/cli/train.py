"""progan-train: train a progressive GAN (Karras et al., ICLR 2018) on your images.

  progan-train --flagfile=configs/demo.flags                  # the CPU demo, on the embedded shapes
  progan-train --flagfile=configs/demo.flags --data_dir=datasets/emoji --run_dir=runs/emoji  # your images
  progan-train --data_dir=datasets/celeba_hq --flagfile=configs/celeba_hq_1024.flags --mirror

Re-running the same command resumes from the run's newest checkpoint (network flags not given
keep the run's own values); Ctrl-C saves and stops.
The network, schedule and training flags are the fields of NetworkConfig, Schedule and
TrainConfig; their defaults are the paper's 1024x1024 configuration.
"""
import os

from progan_tf.cli import common, options

PROGRAM = "progan-train"


def main(f):
    from progan_tf.training import launch
    network, schedule, train = options.options_from_flags(f, keep_run_network=True)
    if f.data_dir and not os.path.isdir(f.data_dir):
        raise common.UsageError(f"--data_dir={f.data_dir} does not exist; prepare it with progan-prepare")
    launch.run(network, schedule, train, data_dir=f.data_dir, synthetic_images=f.synthetic_images,
               devices=f.devices, cpu_devices=f.cpu_devices, deterministic=f.deterministic,
               stop_at_kimg=f.stop_at_kimg, dry_run=f.dry_run)


def run():
    common.run_app(PROGRAM, __doc__, main)


if __name__ == "__main__":
    run()
