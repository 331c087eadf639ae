"""tofa_jax: Transfer-Once-For-All supernets in JAX/Flax."""
