"""Training (TOFA Algorithm 1): losses, optimiser, the jitted sandwich step, the
loop, its evaluator, the subnet record Omega, checkpoints and metric writing.

May import every layer below: `runtime`, `space`, `model`, `cost`, `weights`,
`data`.
"""
