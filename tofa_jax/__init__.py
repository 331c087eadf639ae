"""tofa_jax: Transfer-Once-For-All supernets in JAX/Flax.

Packages by layer, each importing only from the layers before it:
runtime -> space -> model -> cost -> weights -> data -> train -> search.
The entry points at this level (`main`, `palette`, `flops`, `convert_torch`,
`predict`, `prepare_data`) are thin CLIs over them (docs/architecture.md).
"""
