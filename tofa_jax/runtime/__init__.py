"""Runtime: the device mesh, JAX's multi-host start and agreement checks, and
reading a run's saved config.

The bottom layer: imports no other tofa_jax package.
"""
