"""TOFA on cifar10 (10 classes): 200 labelled training images (Table 2), the rest of
the training split unlabelled; section 4.2 defaults (configs/default.py)."""

from configs import default


def get_config():
  c = default.get_config()
  c.data.name = "cifar10"
  c.data.num_labelled = 200
  return c
