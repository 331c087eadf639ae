"""tofa_jax: Transfer-Once-For-All supernets in JAX/Flax.

Packages by layer, each importing only from the layers before it:
runtime -> space -> model -> cost -> weights -> data -> train -> search -> api.
The entry points at this level (`main`, `palette`, `flops`, `convert_torch`,
`predict`, `prepare_data`) are thin CLIs over them (docs/architecture.md).

The Python API (README, "Python API"): `tofa_jax.Palette.load(WORKDIR)`,
`tofa_jax.load_member(DIR)`. They are imported on first use, so `import tofa_jax`
stays cheap (no JAX).
"""

_API = {"Palette": "tofa_jax.api.palette", "Member": "tofa_jax.api.member",
        "load_member": "tofa_jax.api.member"}
__all__ = sorted(_API)


def __getattr__(name: str):
  if name in _API:
    import importlib

    return getattr(importlib.import_module(_API[name]), name)
  raise AttributeError(f"module 'tofa_jax' has no attribute {name!r}")
