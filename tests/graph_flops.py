"""Conv and matmul FLOPs read off a traced TensorFlow graph: the tests' independent check of the
analytical counts in progan_tf.bench.flops (which count from the Keras layer shapes)."""
from progan_tf.bench.flops import taps_on_image


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


def _conv_flops(op, in_shape, out_shape, kernel_shape, nominal):
    """2 * MACs of a conv op, or of the gradient op of a conv from `in_shape` to `out_shape`.

    The three ops of one convolution run over the same (output pixel, tap) pairs. For
    the transposed convs of fused upsampling (Conv2DBackpropInput ops) the conv is the
    stride-2 one from their output to their input.
    """
    if op.get_attr("data_format") not in (b"NHWC", "NHWC"):
        raise ValueError(f"{op.name}: only NHWC convolutions are counted")
    padding = op.get_attr("padding")
    padding = padding.decode() if isinstance(padding, bytes) else padding
    _, stride_h, stride_w, _ = op.get_attr("strides")
    n, out_h, out_w, _ = out_shape
    k1, k2, c_in, c_out = kernel_shape
    in_h, in_w = in_shape[1], in_shape[2]
    if None in (in_h, in_w, out_h, out_w):
        raise ValueError(f"{op.name}: unknown spatial size ({in_shape} -> {out_shape}); trace with static shapes")
    if nominal:
        taps = out_h * k1 * out_w * k2
    else:
        taps = taps_on_image(in_h, out_h, k1, stride_h, padding) * taps_on_image(in_w, out_w, k2, stride_w, padding)
    return 2 * n * taps * c_in * c_out


def graph_flops(concrete_function, nominal=False):
    """Conv and matmul FLOPs of the live ops of a traced function, from their static shapes.

    Ops whose results nothing uses (e.g. weight gradients of D in the G step, which the
    tape builds and Grappler removes) are not counted, nor matmuls of a constant (the
    fused upsample sums its 3x3 taps into a 4x4 kernel so: a few MFLOP per step that
    do not grow with the batch). Loops and nested functions are not followed: trace a
    single step.

    Args:
      concrete_function: e.g. `train_step.get_concrete_function(reals, step, alpha)`.
      nominal: count conv taps over zero padding too (see the module docstring).

    Returns:
      dict op type -> FLOPs, for Conv2D, Conv2DBackpropInput, Conv2DBackpropFilter, MatMul.
    """
    totals = {"Conv2D": 0, "Conv2DBackpropInput": 0, "Conv2DBackpropFilter": 0, "MatMul": 0}
    for op in _live_ops(concrete_function.graph, concrete_function.outputs):
        if op.type not in totals:
            continue
        if op.type == "Conv2D":
            flops = _conv_flops(op, op.inputs[0].shape, op.outputs[0].shape, op.inputs[1].shape, nominal)
        elif op.type == "Conv2DBackpropInput":
            flops = _conv_flops(op, op.outputs[0].shape, op.inputs[2].shape, op.inputs[1].shape, nominal)
        elif op.type == "Conv2DBackpropFilter":
            flops = _conv_flops(op, op.inputs[0].shape, op.inputs[2].shape, op.outputs[0].shape, nominal)
        elif any(t.op.type == "Const" for t in op.inputs):
            continue  # the fused upsample's kernel taps: weight preparation, no image work
        else:
            a, b = op.inputs[0].shape, op.inputs[1].shape
            rows, inner = (a[1], a[0]) if op.get_attr("transpose_a") else (a[0], a[1])
            cols = b[0] if op.get_attr("transpose_b") else b[1]
            flops = 2 * rows * inner * cols
        totals[op.type] += int(flops)
    return totals
