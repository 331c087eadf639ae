"""The model: elastic ops, the masked supernet (one Flax module for every
subnet), static subnet extraction and BatchNorm recalibration.

May import: `runtime`, `space`.
"""
