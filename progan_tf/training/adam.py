"""Adam with one fused op per variable update.

Keras' Adam updates each variable with about a dozen element-wise ops (and as many passes over memory); on small layers
the per-op cost dominates the step. `FusedAdam` computes the same update with TensorFlow's ResourceApplyAdam kernel:

    m += (g - m) * (1 - beta_1);  v += (g^2 - v) * (1 - beta_2)
    var -= lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)

which is Keras' formula term for term (epsilon outside the square root, bias correction folded into the step size). Its
state, hyper-parameters and checkpoint layout are Keras Adam's: it is a drop-in subclass.
"""
import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="progan")
class FusedAdam(keras.optimizers.Adam):
    """keras.optimizers.Adam whose update_step is one ResourceApplyAdam op (amsgrad falls back)."""

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=_handle(m), v=_handle(v), beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step), lr=tf.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype))


def _handle(variable):
    """The resource handle of a Keras variable (of this replica's copy under a tf.distribute update)."""
    return getattr(variable, "value", variable).handle
