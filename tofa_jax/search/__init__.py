"""The palette (TOFA Algorithm 2 and its neighbours): the selection rule,
evolutionary and random search, RSS population sampling, REG-NAS NFR and
rewards, the fused subnet evaluator, palette assembly and its plots.

May import every layer below, `train` included (checkpoints, Omega).
"""
