"""The tiny 8x8 run that the tests of the trainer, runs, checkpoints and config train: its network (the
8x8 block's fused upsampling conv included), schedule, images, a Trainer of it, and its checkpoint files."""
import os

from conftest import shared_strategy
from progan_tf import runs
from progan_tf.data.pipeline import ArrayDataset
from progan_tf.data.synthetic import synthetic_images
from progan_tf.networks import NetworkConfig
from progan_tf.schedule import Schedule
from progan_tf.training.config import TrainConfig
from progan_tf.training.trainer import Trainer

# fused_upsample=8: the 8x8 block's fused upsampling conv runs in every run of these tests.
NET = NetworkConfig(resolution=8, latent_size=16, fmap_base=64, fmap_max=16, fused_upsample=8)
SCHEDULE = Schedule(max_resolution=8, fade_kimg=0.064, stable_kimg=0.064, total_kimg=None, batch_sizes={4: 8, 8: 8})
DATA = ArrayDataset(synthetic_images(64, 8)[0])
SOURCE = DATA  # the same images, under the name the trainer's and config's tests use


def trainer(run_dir, dataset=DATA, devices=("/cpu:0",), lines=None, **train):
    config = TrainConfig(run_dir=str(run_dir), **{"tick_kimg": 0.016, "checkpoint_kimg": 0.032, "grid_size": 4,
                                                  "steps_per_call": 2, **train})
    return Trainer(NET, SCHEDULE, config, dataset, shared_strategy(*devices),
                   print_fn=(lines.append if lines is not None else lambda *_: None))


def checkpoint_files(run_dir, name):
    return sorted(p for p in os.listdir(runs.checkpoint_dir(run_dir)) if p.startswith(name + "."))
