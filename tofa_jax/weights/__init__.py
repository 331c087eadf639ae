"""Weights in and out: PyTorch checkpoints read safely, one module per job
(file loading, format readers, arch inference and embedding), params
directories, a run's pretrained start and the static export of palette members.

May import: `runtime`, `space`, `model`, `cost`.
"""
