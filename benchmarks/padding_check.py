"""Do TensorFlow's CPU convolutions skip the taps over their 'SAME' zero padding?

  python benchmarks/padding_check.py                 # 32 images of 8x8, 128 -> 128 channels
  python benchmarks/padding_check.py --resolution=4

Times the three ops of a 3x3 convolution (forward, input gradient, filter gradient) with
'SAME' padding on the image against 'VALID' on the image with its padding made explicit: the
same output and the same nominal MACs, every tap executed. If 'SAME' runs at a higher nominal
rate, the kernels skip the padding taps, which is why progan_tf.bench.flops counts executed
taps by default.
"""
import argparse

import tensorflow as tf

from progan_tf.bench import peak


def padding_check(batch, resolution, c_in, c_out, target_seconds=0.3, **timing_args):
    """Does the conv skip the taps over its zero padding? Nominal GFLOP/s of each of the three
    ops, 'SAME' on the image against 'VALID' on the image with its padding made explicit
    (the same output and the same nominal MACs, every tap executed).

    Returns:
      {"SAME" | "VALID": {"fwd" | "bwd_input" | "bwd_filter": nominal GFLOP/s (median)}}.
    """
    x = peak._normal([batch, resolution, resolution, c_in], 0)
    # Variables: every iteration reads them again, so no op is loop-invariant.
    w = tf.Variable(peak._normal([3, 3, c_in, c_out], 1))
    dy = tf.Variable(peak._normal([batch, resolution, resolution, c_out], 2))
    nominal = 2 * batch * resolution * resolution * 9 * c_in * c_out
    out = {}
    for padding, image in (("SAME", x), ("VALID", tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]))):
        image = tf.Variable(image)
        ops = {"fwd": lambda: tf.nn.conv2d(image, w, 1, padding),
               "bwd_input": lambda: tf.raw_ops.Conv2DBackpropInput(
                   input_sizes=image.shape, filter=w.read_value(), out_backprop=dy.read_value(), strides=[1, 1, 1, 1],
                   padding=padding),
               "bwd_filter": lambda: tf.raw_ops.Conv2DBackpropFilter(
                   input=image.read_value(), filter_sizes=[3, 3, c_in, c_out], out_backprop=dy.read_value(),
                   strides=[1, 1, 1, 1], padding=padding)}
        out[padding] = {}
        for name, op in ops.items():
            iterations, timing = peak._time_loop(op, target_seconds, **timing_args)
            out[padding][name] = nominal * iterations / timing["median"] / 1e9
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--resolution", type=int, default=8)
    parser.add_argument("--channels", type=int, default=128)
    args = parser.parse_args()
    rates = padding_check(args.batch, args.resolution, args.channels, args.channels)
    print(f"{'op':<11} {'SAME':>8} {'VALID':>8}  nominal GFLOP/s")
    for op in rates["SAME"]:
        print(f"{op:<11} {rates['SAME'][op]:8.1f} {rates['VALID'][op]:8.1f}")


if __name__ == "__main__":
    main()
