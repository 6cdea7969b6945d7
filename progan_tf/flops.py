"""Analytical FLOP counts of the networks and of one training iteration.

A FLOP here is one floating-point multiply or add, so a multiply-accumulate is 2.
Convolutions and dense layers (2 * MACs, counted from the layer shapes of the built
Keras models; a fused upsampling conv counts the 4x4 transposed conv it runs) are
>99 % of the work at every stage; the element-wise layers (LeakyReLU, PixelNorm,
biases, minibatch stddev, fades, pooling) are reported separately as a small
remainder and are not part of `F_G` / `F_D`.

Per iteration (one D step and one G step) the cost is a multiple of the forward costs
F_G, F_D at the batch, because a backward pass through a conv or dense layer is two
of its forward passes (gradient w.r.t. the input and w.r.t. the weights):

  WGAN-GP, D step:  G forward (fakes, no gradient)                          1 F_G
                    D on reals and on fakes: forward + backward            2 x 3 F_D
                    D on interpolates: forward 1, inner input-gradient 1,
                    its double backward 2, which runs on back through the
                    interpolates' forward pass for the weight gradients 2   6 F_D
          G step:   G forward + backward                                   3 F_G
                    D forward + input-gradient only                         2 F_D
                                                                   total 4 F_G + 14 F_D

LSGAN has no penalty (4 F_G + 8 F_D); the logistic loss with R1 takes the penalty
on the reals (4 F_G + 11 F_D). The first layer of each network needs no input
gradient in some of these passes; that saving (<1 % here) is ignored.
"""

from progan_tf import layers as L
from progan_tf import networks

# (multiple of F_G, multiple of F_D) per iteration for each loss; see the module docstring.
ITERATION_MULTIPLES = {"wgan_gp": (4, 14), "lsgan": (4, 8), "logistic": (4, 11), "logistic_no_r1": (4, 8)}

# Element-wise FLOPs per output element of the layers that are not conv/dense.
_ELEMENTWISE = {L.LeakyReLU: 2, L.PixelNorm: 4, L.FadeIn: 3, L.Downsample2D: 1, L.MinibatchStdDev: 4}


def _per_image(shape):
    count = 1
    for d in shape[1:]:
        count *= int(d)
    return count


def layer_flops(model):
    """Forward FLOPs per image of every layer of a built model.

    Args:
      model: a generator or discriminator from `progan_tf.networks`.

    Returns:
      list of (layer name, kind, flops per image); kind is "conv", "dense" or "other".
    """
    rows = []
    for layer in model.layers:
        if isinstance(layer, L.WeightScaledConv2D):
            k, c_in, c_out = layer.kernel.shape[0], layer.kernel.shape[2], layer.kernel.shape[3]
            pixels = _per_image(layer.output.shape) // c_out
            if layer.upsample:  # a 4x4 transposed conv over the input pixels (pixels / 4)
                rows.append((layer.name, "conv", 2 * (pixels // 4) * 16 * c_in * c_out))
            else:
                rows.append((layer.name, "conv", 2 * pixels * k * k * c_in * c_out))
            if layer.use_bias:
                rows.append((layer.name + "_bias", "other", pixels * c_out))
        elif isinstance(layer, L.WeightScaledDense):
            fan_in, units = layer.kernel.shape
            rows.append((layer.name, "dense", 2 * fan_in * units))
            if layer.use_bias:
                rows.append((layer.name + "_bias", "other", units))
        elif type(layer) in _ELEMENTWISE:
            rows.append((layer.name, "other", _ELEMENTWISE[type(layer)] * _per_image(layer.output.shape)))
    return rows


def forward_flops(model, batch=1):
    """(conv + dense FLOPs, element-wise FLOPs) of one forward pass at `batch`."""
    rows = layer_flops(model)
    main = sum(f for _, kind, f in rows if kind != "other")
    other = sum(f for _, kind, f in rows if kind == "other")
    return main * batch, other * batch


def stage_flops(network, resolution, fading=False, batch=1, loss="wgan_gp"):
    """FLOPs of one stage's networks and of one training iteration at `batch`.

    Args:
      network: NetworkConfig.
      resolution: the stage's resolution.
      fading: the fade phase's networks (an extra toRGB / fromRGB of the previous stage).
      batch: global minibatch size.
      loss: a key of ITERATION_MULTIPLES.

    Returns:
      dict with F_G, F_D (conv + dense forward FLOPs at the batch), their element-wise
      remainders, iteration (conv + dense FLOPs of one D step + one G step),
      per_image (iteration / batch) and the multiples used.
    """
    if loss not in ITERATION_MULTIPLES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {sorted(ITERATION_MULTIPLES)}")
    f_g, other_g = forward_flops(networks.build_generator(network, resolution, fading), batch)
    f_d, other_d = forward_flops(networks.build_discriminator(network, resolution, fading), batch)
    mult_g, mult_d = ITERATION_MULTIPLES[loss]
    iteration = mult_g * f_g + mult_d * f_d
    return {"resolution": resolution, "fading": fading, "batch": batch, "loss": loss,
            "F_G": f_g, "F_D": f_d, "other_G": other_g, "other_D": other_d,
            "multiples": [mult_g, mult_d], "iteration": iteration, "per_image": iteration / batch}


_SINKS = ("AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp")


def _live_ops(graph, outputs):
    """Ops that the outputs and the variable updates depend on (what Grappler keeps)."""
    stack = [t.op for t in outputs] + [op for op in graph.get_operations() if op.type in _SINKS]
    live = set()
    while stack:
        op = stack.pop()
        if op in live:
            continue
        live.add(op)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return live


def _conv_flops(backprop_shape, kernel_shape):
    """2 * MACs of a conv whose output (or output gradient) has `backprop_shape`.

    Each output pixel costs one kernel's worth of MACs at any stride, so this holds for
    the stride-2 transposed convs of fused upsampling (their `out_backprop` is the
    low-resolution input).
    """
    n, h, w, _ = backprop_shape
    k1, k2, c_in, c_out = kernel_shape
    return 2 * n * h * w * k1 * k2 * c_in * c_out


def graph_flops(concrete_function):
    """Conv and matmul FLOPs of the live ops of a traced function, from their static shapes.

    Ops whose results nothing uses (e.g. weight gradients of D in the G step, which the
    tape builds and Grappler removes) are not counted. Loops and nested functions are
    not followed: trace a single step.

    Args:
      concrete_function: e.g. `train_step.get_concrete_function(reals, step, alpha)`.

    Returns:
      dict op type -> FLOPs, for Conv2D, Conv2DBackpropInput, Conv2DBackpropFilter, MatMul.
    """
    totals = {"Conv2D": 0, "Conv2DBackpropInput": 0, "Conv2DBackpropFilter": 0, "MatMul": 0}
    for op in _live_ops(concrete_function.graph, concrete_function.outputs):
        if op.type not in totals:
            continue
        if op.type == "Conv2D":
            flops = _conv_flops(op.outputs[0].shape, op.inputs[1].shape)
        elif op.type == "Conv2DBackpropInput":
            flops = _conv_flops(op.inputs[2].shape, op.inputs[1].shape)
        elif op.type == "Conv2DBackpropFilter":
            flops = _conv_flops(op.inputs[2].shape, op.outputs[0].shape)
        else:
            a, b = op.inputs[0].shape, op.inputs[1].shape
            rows, inner = (a[1], a[0]) if op.get_attr("transpose_a") else (a[0], a[1])
            cols = b[0] if op.get_attr("transpose_b") else b[1]
            flops = 2 * rows * inner * cols
        totals[op.type] += int(flops)
    return totals
