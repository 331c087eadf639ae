"""Helpers shared by the tests: paths, configs, model variables, compile counting
and the PyTorch reference networks."""
