"""The Python API: `tofa_jax.Palette.load(...)`, `tofa_jax.load_member(...)` (README)."""
