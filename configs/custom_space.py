"""A user-defined search space, written in a config.

  python -m tofa_jax.flops --config=configs/custom_space.py --arch=max

`model.space = 'custom'` selects `model.custom_space`; its keys are the fields
of `tofa_jax.search_space.SearchSpace`, each stage those of `StageSpec`.
"""

import ml_collections


def get_config(arg=None):
  del arg
  config = ml_collections.ConfigDict()
  config.model = ml_collections.ConfigDict()
  config.model.space = "custom"
  config.model.mflops_window = ()  # () keeps the space's own window; (lo, hi) overrides
  config.model.custom_space = dict(
      name="mobile_small",
      stem_widths=(16,),
      stem_act="hswish",
      stages=[
          dict(widths=(16,), depths=(1,), kernels=(3,), expansions=(1,), stride=2, se=True,
               act="relu"),
          dict(widths=(24,), depths=(2, 3), kernels=(3, 5), expansions=(3, 4), stride=2,
               se=False, act="relu"),
          dict(widths=(40, 48), depths=(2, 3), kernels=(3, 5), expansions=(3, 4, 6), stride=2,
               se=True, act="hswish"),
          dict(widths=(96,), depths=(2, 3, 4), kernels=(3, 5), expansions=(3, 6), stride=2,
               se=True, act="hswish"),
      ],
      head_widths=(1024,),
      head_act="hswish",
      head="v3",
      head_expand=6.0,
      resolutions=(160, 192, 224),
      per_layer=True,
      shortcut="identity",
  )
  return config
