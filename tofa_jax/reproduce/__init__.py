"""The reproduction study (`python -m tofa_jax.study`): the papers' comparisons at small
scale, each a section of docs/results.md with its table, plots and an honest reading.

May import every layer below (training, palettes, fine-tuning, config validation).
"""
