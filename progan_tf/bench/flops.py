"""Analytical FLOP counts of the networks and of one training iteration.

A FLOP is one floating-point multiply or add (a multiply-accumulate is 2). Convolutions and dense layers (2 * MACs,
from the layer shapes of the built Keras models; a fused upsampling conv counts the 4x4 transposed conv it runs) are
>99 % of the work at every stage; the element-wise layers (LeakyReLU, PixelNorm, biases, minibatch stddev, fades,
pooling) are reported separately as a small remainder and are not part of `F_G` / `F_D`.

Two counts of a convolution's MACs:
  executed (the default): only the kernel taps that land on the image. Taps over the 'SAME' zero padding multiply
    by zero and oneDNN's kernels skip them: a 3x3 conv runs 22 of 24 taps per row at 8x8, 10 of 12 at 4x4, so it
    does 84 % of the nominal work at 8x8, 69 % at 4x4 and 98 % at 64x64.
  nominal (`nominal=True`): every tap of every output pixel, the usual count. Its rates are not comparable across
    resolutions: at 8x8 a conv's nominal rate exceeds this machine's FMA ceiling (benchmarks/RESULTS.md).

Per iteration (one D step and one G step) the cost is a multiple of the forward costs F_G, F_D at the batch, as a
backward pass through a conv or dense layer is two of its forward passes (gradients w.r.t. input and weights):

  WGAN-GP, D step:  G forward (fakes, no gradient)                          1 F_G
                    D on reals and on fakes: forward + backward            2 x 3 F_D
                    D on interpolates: forward 1, inner input-gradient 1,
                    its double backward 2, which runs on back through the
                    interpolates' forward pass for the weight gradients 2   6 F_D
          G step:   G forward + backward                                   3 F_G
                    D forward + input-gradient only                         2 F_D
                                                                   total 4 F_G + 14 F_D

LSGAN has no penalty (4 F_G + 8 F_D); the logistic loss with R1 takes the penalty on the reals (4 F_G + 11 F_D).
The first layer of each network needs no input gradient in some of these passes; that saving (<1 % here) is ignored.
"""
import math

from progan_tf import layers as L
from progan_tf import networks

# (multiple of F_G, multiple of F_D) per iteration for each loss; see the module docstring.
ITERATION_MULTIPLES = {"wgan_gp": (4, 14), "lsgan": (4, 8), "logistic": (4, 11), "logistic_no_r1": (4, 8)}

# Element-wise FLOPs per output element of the layers that are not conv/dense.
_ELEMENTWISE = {L.LeakyReLU: 2, L.PixelNorm: 4, L.FadeIn: 3, L.Downsample2D: 1, L.MinibatchStdDev: 4}


def taps_on_image(in_size, out_size, kernel, stride=1, padding="SAME"):
    """Kernel taps of a convolution along one dimension that land on its input, not on padding.

    Summed over the output positions; the conv's MACs per image are the product of this over its two dimensions
    times c_in * c_out. `in_size` and `out_size` are the convolution's own (for a transposed conv: its output and
    its input). `padding` is 'SAME', 'VALID' or the number of zero rows before the input (as oneDNN states it).
    """
    if padding == "SAME":
        pad = max((out_size - 1) * stride + kernel - in_size, 0) // 2
    elif padding == "VALID":
        pad = 0
    elif isinstance(padding, int) and padding >= 0:
        pad = padding
    else:
        raise ValueError(f"padding {padding!r} is not counted; only 'SAME', 'VALID' and a count of rows are")
    return sum(1 for o in range(out_size) for t in range(kernel) if 0 <= stride * o + t - pad < in_size)


def layer_flops(model, nominal=False):
    """A built `progan_tf.networks` model -> [(layer name, kind "conv" | "dense" | "other", forward FLOPs per image)].

    `nominal` counts the kernel taps over zero padding too (see the module docstring).
    """
    rows = []
    for layer in model.layers:
        if isinstance(layer, L.WeightScaledConv2D):
            k, c_in, c_out = layer.kernel.shape[0], layer.kernel.shape[2], layer.kernel.shape[3]
            h, w = int(layer.output.shape[1]), int(layer.output.shape[2])
            pixels = h * w
            # A fused upsampling conv is a 4x4 stride-2 transposed conv: the gradient of a
            # conv from the output (h, w) to the input (h / 2, w / 2). A fused downsampling
            # conv is a 4x4 stride-2 conv from (2h, 2w) to (h, w).
            in_h, in_w, out_h, out_w, stride = h, w, h, w, 1
            if layer.upsample:
                k, stride, out_h, out_w = 4, 2, h // 2, w // 2
            elif layer.downsample:
                k, stride, in_h, in_w = 4, 2, 2 * h, 2 * w
            if nominal:
                taps = out_h * k * out_w * k
            else:
                taps = taps_on_image(in_h, out_h, k, stride) * taps_on_image(in_w, out_w, k, stride)
            rows.append((layer.name, "conv", 2 * taps * c_in * c_out))
            if layer.use_bias:
                rows.append((layer.name + "_bias", "other", pixels * c_out))
        elif isinstance(layer, L.WeightScaledDense):
            fan_in, units = layer.kernel.shape
            rows.append((layer.name, "dense", 2 * fan_in * units))
            if layer.use_bias:
                rows.append((layer.name + "_bias", "other", units))
        elif type(layer) in _ELEMENTWISE:
            per_image = math.prod(int(d) for d in layer.output.shape[1:])
            rows.append((layer.name, "other", _ELEMENTWISE[type(layer)] * per_image))
    return rows


def forward_flops(model, batch=1, nominal=False):
    """(conv + dense FLOPs, element-wise FLOPs) of one forward pass at `batch`."""
    rows = layer_flops(model, nominal)
    main = sum(f for _, kind, f in rows if kind != "other")
    other = sum(f for _, kind, f in rows if kind == "other")
    return main * batch, other * batch


def stage_flops(network, resolution, fading=False, batch=1, loss="wgan_gp"):
    """FLOPs of one stage's networks and of one training iteration at global minibatch `batch`, as a dict.

    `fading`: the fade phase's networks (an extra toRGB / fromRGB of the previous stage); `loss`: a key of
    ITERATION_MULTIPLES. The dict holds F_G, F_D (executed conv + dense forward FLOPs at the batch), their element-wise
    remainders, iteration (conv + dense FLOPs of one D step + one G step), per_image (iteration / batch), the
    multiples used, and F_G, F_D, iteration and per_image counted nominally (keys ending in "_nominal").
    """
    if loss not in ITERATION_MULTIPLES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {sorted(ITERATION_MULTIPLES)}")
    g = networks.build_generator(network, resolution, fading)
    d = networks.build_discriminator(network, resolution, fading)
    mult_g, mult_d = ITERATION_MULTIPLES[loss]
    f_g, other_g = forward_flops(g, batch)
    f_d, other_d = forward_flops(d, batch)
    nominal_g, nominal_d = forward_flops(g, batch, nominal=True)[0], forward_flops(d, batch, nominal=True)[0]
    iteration, iteration_nominal = mult_g * f_g + mult_d * f_d, mult_g * nominal_g + mult_d * nominal_d
    return {"resolution": resolution, "fading": fading, "batch": batch, "loss": loss,
            "F_G": f_g, "F_D": f_d, "other_G": other_g, "other_D": other_d,
            "multiples": [mult_g, mult_d], "iteration": iteration, "per_image": iteration / batch,
            "F_G_nominal": nominal_g, "F_D_nominal": nominal_d, "iteration_nominal": iteration_nominal,
            "per_image_nominal": iteration_nominal / batch}


def conv_work(network, resolution, fading=False, batch=1, loss="wgan_gp"):
    """An iteration's conv + dense FLOPs (executed) by the shape of the convolution that runs them.

    {(side, c_in, c_out): FLOPs} for the 3x3 convs and the fused 4x4 ones (side: the conv's output height),
    {None: FLOPs} for 1x1 convs and dense layers; these sum to `stage_flops(...)["iteration"]`. Plus
    {"elementwise": FLOPs}: the element-wise layers at the same multiples, a measure of the memory-bound work.
    """
    mult_g, mult_d = ITERATION_MULTIPLES[loss]
    work = {}
    for model, multiple in ((networks.build_generator(network, resolution, fading), mult_g),
                            (networks.build_discriminator(network, resolution, fading), mult_d)):
        layers = {layer.name: layer for layer in model.layers}
        for name, kind, f in layer_flops(model):
            layer, key = layers.get(name), "elementwise" if kind == "other" else None
            if isinstance(layer, L.WeightScaledConv2D) and layer.kernel.shape[0] > 1:
                key = (int(layer.output.shape[1]), int(layer.kernel.shape[2]), int(layer.kernel.shape[3]))
            work[key] = work.get(key, 0.0) + multiple * batch * f
    return work

