"""Data: TFDS, folder and bundled sources, the FGVC-Aircraft builder, a run's
labelled/unlabelled/validation split, the grain input pipeline, on-device
augmentation and image preprocessing.

May import: `runtime`, `space`, `model`, `cost`, `weights`.
"""
