"""progan_tf: Progressive Growing of GANs for TensorFlow 2 / Keras 3."""
from setuptools import find_packages, setup

# TensorFlow itself is an extra: `.[cpu]` installs the CPU wheel, `.[gpu]` the CUDA
# build. Both provide the same `tensorflow` module, so neither is forced on users.
CORE = [
    "keras>=3.0",
    "tensorflow-datasets>=4.9",
    "numpy>=1.26",
    "pillow>=10.0",
    "absl-py>=2.0",
    "scikit-image>=0.22",
    "tensorboard>=2.16",  # tf.summary needs it; the TF wheels no longer pull it in
    "psutil>=5.9",  # CPU load and memory in the benchmarks (tensorflow-datasets already pulls it in)
    # TensorFlow's own range is >=0.5.1,<1; importing 0.7.0 costs about 0.8 s more CPU than 0.6.0 in every process
    # that imports TensorFlow (each CLI start, each test subprocess), measured on a Zen 3 EPYC.
    "ml_dtypes>=0.5.1,<0.7",
]

setup(
    name="progan_tf",
    version="0.1.0",
    description="Progressive Growing of GANs (Karras et al., ICLR 2018) in TensorFlow 2 / Keras 3",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["progan_tf", "progan_tf.*"]),
    install_requires=CORE,
    extras_require={
        "cpu": ["tensorflow-cpu>=2.16"],
        "gpu": ["tensorflow[and-cuda]>=2.16"],
        # pytest-xdist: the suite runs on every core given (-n 2), most of its time is single-threaded tracing.
        "test": ["tensorflow-cpu>=2.16", "pytest>=7", "pytest-xdist>=3"],
    },
    entry_points={
        "console_scripts": [
            "progan-train=progan_tf.cli.train:run",
            "progan-prepare=progan_tf.cli.prepare:run",
            "progan-export=progan_tf.cli.export:run",
            "progan-generate=progan_tf.cli.generate:run",
            "progan-serve=progan_tf.cli.serve:run",
            "progan-eval=progan_tf.cli.evaluate:run",
            "progan-bench=progan_tf.cli.bench:run",
        ],
    },
)
