"""The training step (training/step.py): a call of k steps computes exactly what k single steps compute,
and so a run does not depend on steps_per_call."""
import json

import numpy as np
import pytest
import tensorflow as tf

from progan_tf.data.pipeline import ArrayDataset
from progan_tf.data.synthetic import synthetic_images
from progan_tf.networks import NetworkConfig
from progan_tf.schedule import Schedule
from progan_tf.training.config import TrainConfig
from progan_tf.training.trainer import Trainer

NET = NetworkConfig(resolution=8, latent_size=16, fmap_base=64, fmap_max=16)
SCHEDULE = Schedule(max_resolution=8, fade_kimg=0.064, stable_kimg=0.064, total_kimg=None, batch_sizes={4: 8, 8: 8})
SOURCE = ArrayDataset(synthetic_images(64, 8)[0])
STRATEGY = tf.distribute.OneDeviceStrategy("/cpu:0")


def _weights(m):
    return [w.numpy() for model in (m.G, m.D, m.Gs) for w in model.weights] + \
        [v.numpy() for opt in (m.g_opt, m.d_opt) for v in opt.variables]


@pytest.mark.parametrize("k", [4])
def test_steps_per_call_equals_single_steps(tmp_path, k):
    trainer = Trainer(NET, SCHEDULE, TrainConfig(run_dir=str(tmp_path), g_ema_beta=0.9), SOURCE, STRATEGY,
                      print_fn=lambda *_: None)
    phase = SCHEDULE.phases()[1]  # 8x8 fade: alpha changes from step to step
    alphas = [0.1, 0.4, 0.7]

    single = trainer.build_phase(phase)
    step, data = trainer.make_train_step(single), trainer.dataset_iterator(phase, 0)
    expected = [[float(v) for v in step(next(data), tf.constant(5 + i, tf.int64), tf.constant(a), tf.constant(0.9))]
                for i, a in enumerate(alphas)]

    multi = trainer.build_phase(phase)
    steps, data = trainer.make_train_step(multi, k), trainer.dataset_iterator(phase, 0)
    d_losses, g_losses = steps(data, tf.constant(5, tf.int64), tf.constant(alphas + [0.0] * (k - 3)),
                               tf.fill([k], 0.9), tf.constant(3, tf.int32))  # k = 4: one fewer than a call can do
    np.testing.assert_array_equal(np.stack([d_losses, g_losses], 1)[:3], expected)
    assert not np.any(d_losses.numpy()[3:])
    for a, b in zip(_weights(single), _weights(multi)):
        np.testing.assert_array_equal(a, b)


def test_training_does_not_depend_on_steps_per_call(tmp_path):
    runs = {}
    for k in (1, 3):
        config = TrainConfig(run_dir=str(tmp_path / str(k)), tick_kimg=0.04, checkpoint_kimg=0.056, grid_size=4,
                             steps_per_call=k)
        trainer = Trainer(NET, SCHEDULE, config, SOURCE, STRATEGY, print_fn=lambda *_: None)
        state = trainer.train(stop_at_images=152)
        ticks = [json.loads(line) for line in open(tmp_path / str(k) / "metrics.jsonl")]
        runs[k] = state, [(t["kimg"], t["loss/D"], t["loss/G"]) for t in ticks], _weights(trainer.models)
    (state1, ticks1, weights1), (state3, ticks3, weights3) = runs[1], runs[3]
    assert {key: state1[key] for key in ("images_seen", "step", "phase_step")} == \
        {key: state3[key] for key in ("images_seen", "step", "phase_step")} == \
        {"images_seen": 152, "step": 19, "phase_step": 3}
    assert ticks1 == ticks3 and [t[0] for t in ticks1] == [0.04, 0.08, 0.12, 0.152]
    for a, b in zip(weights1, weights3):
        np.testing.assert_array_equal(a, b)
