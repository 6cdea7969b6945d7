"""The paper's full schedule on GPUs, on paper: FLOPs per image x images per phase / a stated rate.

No GPU with TensorFlow can be reached from here, so this projects instead of measuring. The
FLOPs are the package's own count (progan_tf.bench.flops: conv and dense layers as executed,
one WGAN-GP iteration = 4 F_G + 14 F_D per image); the rates are each chip's published dense
peak times a stated fraction. Element-wise layers are left out of the FLOPs; the fraction of
peak has to cover them (they are memory-bound). Eight GPUs add one ring all-reduce of the G
and D gradients per iteration (float32, not overlapped with compute, as MirroredStrategy
runs it) at a stated NCCL bus bandwidth.

  python benchmarks/gpu_projection.py --flagfile=configs/celeba_hq_1024.flags
  python benchmarks/gpu_projection.py --flagfile=configs/celeba_hq_1024.flags --fused_upsample=8 --fused_downsample=8
"""
from absl import app, flags

from progan_tf import networks
from progan_tf.bench import flops
from progan_tf.cli import options as train_options  # progan-train's flags

# Dense peaks in TFLOP/s (NVIDIA data sheets, SXM parts): float32 on CUDA cores, TF32 and
# float16/bfloat16 on tensor cores (V100 has no TF32: its float32 convs run on CUDA cores).
PEAKS = {"V100": {"float32": 15.7, "tf32": 15.7, "mixed": 125.0},
         "A100": {"float32": 19.5, "tf32": 156.0, "mixed": 312.0},
         "H100": {"float32": 67.0, "tf32": 494.7, "mixed": 989.4}}
# The fraction of peak a step reaches. Calibrated on the official code: its README gives about
# 2 weeks on one V100 and 2 days on eight for this schedule (float32, fused scale in G and D
# from 8x8), which is 31 % and 27 % of the V100's float32 peak by this FLOP count (printed
# below). So float32 at 30 %. Tensor cores reach a smaller fraction of their much higher peak
# on a GAN step (element-wise layers, 4 images per GPU at 1024x1024, the penalty's double
# backward pass): 20 % (TF32) and 15 % (mixed precision) are assumed. Stated, not measured.
FRACTIONS = {"float32": 0.30, "tf32": 0.20, "mixed": 0.15}
OFFICIAL_DAYS = {1: 14.0, 8: 2.0}  # V100s -> days (official README, fused scale, float32)
# NCCL all-reduce bus bandwidth within one 8-GPU server (GB/s): DGX-1 V100 (NVLink 2),
# DGX A100 (NVSwitch, NVLink 3), DGX H100 (NVSwitch, NVLink 4), about 50-60 % of NVLink's
# per-GPU bandwidth, which is what all_reduce_perf typically reports at large messages.
BUS_GBPS = {"V100": 130.0, "A100": 230.0, "H100": 450.0}
# The official 8-GPU schedule's global minibatch per resolution (32 from 64x64 up: 4 per GPU).
BATCH_8GPU = {4: 512, 8: 256, 16: 128, 32: 64, 64: 32, 128: 32, 256: 32, 512: 32, 1024: 32}
FLAGS = flags.FLAGS


def phase_costs(network, schedule, loss):
    """[(phase, images, FLOPs per image)] of the whole schedule."""
    cache, rows = {}, []
    for phase in schedule.phases():
        key = (phase.resolution, phase.fading)
        if key not in cache:
            cache[key] = flops.stage_flops(network, phase.resolution, phase.fading, batch=1, loss=loss)["per_image"]
        rows.append((phase, phase.end - phase.start, cache[key]))
    return rows


def parameter_count(network):
    """Trainable parameters of the final G and D, whose gradients an iteration all-reduces."""
    g = networks.build_generator(network, network.resolution)
    d = networks.build_discriminator(network, network.resolution)
    return sum(int(w.shape.num_elements()) for w in g.trainable_weights + d.trainable_weights)


def main(argv):
    del argv
    network, schedule, train = train_options.options_from_flags(FLAGS)
    rows = phase_costs(network, schedule, train.loss)
    total = sum(images * per_image for _, images, per_image in rows)
    print(f"# {network.resolution}x{network.resolution}, {schedule.total_images / 1000:g} kimg, {train.loss}, "
          f"fused_upsample={network.fused_upsample}, fused_downsample={network.fused_downsample}\n")
    print("| phase | kimg | GFLOP per image | PFLOP in the phase |\n|---|---|---|---|")
    for phase, images, per_image in rows:
        print(f"| {phase.resolution}x{phase.resolution} {phase.name} | {images / 1000:g} | {per_image / 1e9:.2f} | "
              f"{images * per_image / 1e15:.1f} |")
    print(f"| total | {schedule.total_images / 1000:g} | | {total / 1e15:.0f} |\n")
    params = parameter_count(network)
    steps_8 = sum(images / BATCH_8GPU.get(phase.resolution, 32) for phase, images, _ in rows)
    bytes_per_gpu = 2 * 7 / 8 * params * 4  # ring all-reduce, float32 gradients
    print(f"G + D parameters {params / 1e6:.2f} M; 8 GPUs: {steps_8:,.0f} iterations at the official 8-GPU batches, "
          f"{bytes_per_gpu / 1e6:.0f} MB sent per GPU per iteration\n")
    for gpus, days in OFFICIAL_DAYS.items():
        print(f"official code: {days:g} days on {gpus} V100 = {total / (days * 86400 * gpus) / 1e12:.1f} TFLOP/s per "
              f"GPU = {total / (days * 86400 * gpus) / (PEAKS['V100']['float32'] * 1e12):.0%} of float32 peak at "
              "this schedule's FLOPs (meaningful with --fused_upsample=8 --fused_downsample=8, as the official "
              "networks run)")
    print()
    print("| GPU | precision | peak TFLOP/s | at | 1 GPU | 8 GPUs (all-reduce share) |\n|---|---|---|---|---|---|")
    for gpu, peaks in PEAKS.items():
        for precision, peak in peaks.items():
            if gpu == "V100" and precision == "tf32":
                continue
            rate = peak * 1e12 * FRACTIONS[precision]
            one = total / rate
            reduce = steps_8 * bytes_per_gpu / (BUS_GBPS[gpu] * 1e9)
            eight = one / 8 + reduce
            print(f"| {gpu} | {precision} | {peak:g} | {FRACTIONS[precision]:.0%} | {one / 86400:.1f} days | "
                  f"{eight / 86400:.2f} days ({reduce / eight:.0%}) |")


if __name__ == "__main__":
    app.run(main)
