"""Search spaces and subnets as data: `SearchSpace`, `Arch`, samplers, genomes,
a subnet's per-layer plan (shapes and strides) and its MFLOPs/params count.

Plain Python and NumPy, no JAX. May import: `runtime`.
"""
