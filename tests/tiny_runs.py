"""The tiny 8x8 run that the tests of the trainer and of its config train: its network (the 8x8 block's
fused upsampling conv included), schedule and images."""
from progan_tf.data.pipeline import ArrayDataset
from progan_tf.data.synthetic import synthetic_images
from progan_tf.networks import NetworkConfig
from progan_tf.schedule import Schedule

# fused_upsample=8: the 8x8 block's fused upsampling conv runs in every run of these tests.
NET = NetworkConfig(resolution=8, latent_size=16, fmap_base=64, fmap_max=16, fused_upsample=8)
SCHEDULE = Schedule(max_resolution=8, fade_kimg=0.064, stable_kimg=0.064, total_kimg=None,
                    batch_sizes={4: 8, 8: 8})
SOURCE = ArrayDataset(synthetic_images(64, 8)[0])
