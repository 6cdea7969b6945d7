"""The contract every progan_tf layer must honour (one shared check, as keras-hub does)."""
import keras
import numpy as np
import tensorflow as tf


def check_layer_contract(layer_cls, init_kwargs, input_shape, expected_output_shape, expected_num_weights,
                         expected_trainable=None, input_is_list=False):
    """Config round-trip, serialisation, weight counts, symbolic and eager calls, a training
    step, and mixed precision, for one layer class.

    Args:
      layer_cls: the layer class.
      init_kwargs: constructor arguments.
      input_shape: input shape without batch (a list of shapes when input_is_list).
      expected_output_shape: output shape without batch.
      expected_num_weights: total weight variables after build.
      expected_trainable: trainable weight variables (default: expected_num_weights).
      input_is_list: the layer takes a list of inputs (FadeIn).
    """
    rng = np.random.default_rng(0)
    shapes = input_shape if input_is_list else [input_shape]
    data = [rng.standard_normal((4, *s)).astype(np.float32) for s in shapes]
    call_arg = (lambda xs: list(xs)) if input_is_list else (lambda xs: xs[0])

    layer = layer_cls(**init_kwargs, name="under_test")
    # Eager call builds the layer; output shape matches compute_output_shape.
    out = layer(call_arg([tf.constant(d) for d in data]))
    assert tuple(out.shape[1:]) == tuple(expected_output_shape)
    static = layer.compute_output_shape([(4, *s) for s in shapes] if input_is_list else (4, *shapes[0]))
    assert tuple(static[1:]) == tuple(expected_output_shape)
    assert len(layer.weights) == expected_num_weights
    trainable = expected_num_weights if expected_trainable is None else expected_trainable
    assert len(layer.trainable_weights) == trainable

    # Symbolic call inside a functional model.
    inputs = [keras.Input(s) for s in shapes]
    model = keras.Model(inputs, layer_cls(**init_kwargs)(call_arg(inputs)))
    assert tuple(model.output_shape[1:]) == tuple(expected_output_shape)

    # Config round-trip and Keras serialisation give the same computation.
    config = layer.get_config()
    for key, value in init_kwargs.items():
        stored = config[key]
        assert (list(stored) if isinstance(stored, tuple) else stored) == \
            (list(value) if isinstance(value, tuple) else value), key
    clone = layer_cls.from_config(config)
    clone(call_arg([tf.constant(d) for d in data]))
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(call_arg(data)).numpy(), out.numpy())
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(revived) is layer_cls and revived.get_config() == config

    # A training step changes every trainable weight and yields finite gradients.
    if trainable:
        before = [w.numpy().copy() for w in layer.trainable_weights]
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(layer(call_arg(data)) - 1.0))
        grads = tape.gradient(loss, layer.trainable_weights)
        assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in grads)
        keras.optimizers.SGD(0.1).apply_gradients(zip(grads, layer.trainable_weights))
        assert all(not np.array_equal(b, w.numpy()) for b, w in zip(before, layer.trainable_weights))

    # Mixed precision: float16 compute, float32 variables, finite output close to float32.
    mixed = layer_cls(**init_kwargs, dtype="mixed_float16")
    out16 = mixed(call_arg([tf.constant(d) for d in data]))
    assert out16.dtype == tf.float16
    assert all(w.dtype == "float32" for w in mixed.weights)
    mixed.set_weights(layer.get_weights())
    out16 = mixed(call_arg(data)).numpy().astype(np.float32)
    assert np.all(np.isfinite(out16))
    np.testing.assert_allclose(out16, layer(call_arg(data)).numpy(), rtol=2e-2, atol=2e-2)
