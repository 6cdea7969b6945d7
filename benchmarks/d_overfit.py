"""Does D remember its training images? D's scores on training reals, held-out reals and Gs's fakes.

  python benchmarks/d_overfit.py --run_dir=runs/cpu_quality --data=datasets/emoji --heldout=datasets/emoji_test

Loads D and Gs of the run's newest checkpoint at its resolution and alpha, and scores as many training images (a
fixed random choice) as the held-out set has, the held-out images, and as many fakes. Prints the mean ± sd of each
and the overfitting ratio (train - held-out) / (held-out - fake): 0 when D cannot tell the images it trained on from
new ones, 1 when it separates them as far as it separates reals from fakes.
"""
import argparse
import os

import numpy as np
import tensorflow as tf

from progan_tf import networks, runs
from progan_tf.data.pipeline import PreparedDataset
from progan_tf.errors import RunError


def newest_models(run_dir):
    """(D, Gs, state) of the run's newest readable checkpoint, with its alpha set; RunError if there is none."""
    gs, config, state = runs.load_generator(run_dir)  # at the checkpoint's alpha, past a damaged newest one
    d = networks.build_discriminator(config, state["resolution"], fading=state["fading"])
    path = os.path.join(runs.checkpoint_dir(run_dir), state["checkpoint"])
    tf.train.Checkpoint(D=d).restore(path).expect_partial().assert_existing_objects_matched()
    networks.set_alpha(d, state["alpha"])
    return d, gs, state


def main():
    # argparse, not absl flags: the tests import this module beside progan_tf.cli, whose flags share these names.
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run_dir", required=True, help="The run directory.")
    parser.add_argument("--data", required=True, help="The prepared dataset the run trained on.")
    parser.add_argument("--heldout", required=True, help="A prepared dataset of images the run never trained on.")
    args = parser.parse_args()
    try:
        d, gs, state = newest_models(args.run_dir)
    except RunError as e:  # no readable config.json or checkpoint
        raise SystemExit(f"d_overfit.py: {e}") from None
    resolution = int(state["resolution"])
    heldout = PreparedDataset(args.heldout).level(resolution)
    train = PreparedDataset(args.data).level(resolution)
    rng = np.random.default_rng(0)
    train = train[rng.choice(len(train), len(heldout), replace=False)]
    latents = rng.standard_normal((len(heldout), gs.input_shape[-1])).astype(np.float32)
    fakes = np.concatenate([gs(latents[i:i + 64], training=False).numpy() for i in range(0, len(latents), 64)])
    scores = {}
    for name, images in (("train", train / 127.5 - 1), ("held-out", heldout / 127.5 - 1), ("fake", fakes)):
        images = images.astype(np.float32)  # the reals from uint8 to D's input range [-1, 1], as in training
        # Whole batches of 32 only, so that minibatch stddev sees groups as in training.
        scores[name] = np.concatenate([d(images[i:i + 32], training=False).numpy().ravel()
                                       for i in range(0, len(images) - 31, 32)])
    means = {name: s.mean() for name, s in scores.items()}
    ratio = (means["train"] - means["held-out"]) / (means["held-out"] - means["fake"])
    print(f"kimg {state['images_seen'] / 1000:.0f} {resolution}x{resolution}: "
          + ", ".join(f"{name} {s.mean():+.3f} ± {s.std():.3f}" for name, s in scores.items())
          + f"; (train - held-out) / (held-out - fake) = {ratio:.2f}")


if __name__ == "__main__":
    main()
