"""Deployment: a subnet converted to ONNX and LiteRT, run in those runtimes with a
fixed thread count, its latency measured there, and per-layer latency tables that
predict a subnet's latency on the machine that built them.

May import: `runtime`, `space`, `model`, `cost`, `weights`.
"""
