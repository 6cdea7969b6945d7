"""FusedAdam is Keras' Adam in one op per variable: same numbers, same state, on 1 and 2 replicas."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import shared_strategy

from progan_tf.training.adam import FusedAdam


def _train(optimizer_cls, strategy, steps=30):
    with strategy.scope():
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(9), keras.layers.Dense(2)])
        opt = optimizer_cls(3e-3, beta_1=0.0, beta_2=0.99, epsilon=1e-8)
        opt.build(model.trainable_variables)
    x = tf.random.stateless_normal([8, 6], [4, 2])

    @tf.function
    def step():
        def replica():
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.square(model(x) - 1.0)) / 8.0
            opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        strategy.run(replica)

    for _ in range(steps):
        step()
    return model, opt


@pytest.mark.parametrize("devices", [("/cpu:0",), ("/cpu:0", "/cpu:1")])
def test_fused_adam_equals_keras_adam(devices):
    strategy = shared_strategy(*devices)
    ours_model, ours = _train(FusedAdam, strategy)
    ref_model, ref = _train(keras.optimizers.Adam, strategy)
    moved = 0.0
    for a, b in zip(ours_model.weights + ours.variables, ref_model.weights + ref.variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)
    for a, b in zip(ours_model.weights, _train(keras.optimizers.Adam, strategy, steps=0)[0].weights):
        moved = max(moved, float(np.max(np.abs(a.numpy() - b.numpy()))))
    assert moved > 0.05  # 30 steps of lr 3e-3 really moved the weights
    assert int(ours.iterations.numpy()) == 30


def test_a_keras_adam_checkpoint_restores_into_fused_adam(tmp_path):
    """Runs saved before FusedAdam resume with their optimizer state."""
    strategy = shared_strategy("/cpu:0")
    ref_model, ref = _train(keras.optimizers.Adam, strategy, steps=5)
    path = tf.train.Checkpoint(model=ref_model, opt=ref).write(str(tmp_path / "ckpt"))
    model, opt = _train(FusedAdam, strategy, steps=0)
    tf.train.Checkpoint(model=model, opt=opt).read(path).assert_consumed()
    assert len(opt.variables) == len(ref.variables)
    for a, b in zip(opt.variables, ref.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
