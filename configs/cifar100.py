"""TOFA on cifar100 (100 classes): 2000 labelled training images (Table 2), the rest of
the training split unlabelled; section 4.2 defaults (configs/default.py)."""

from configs import default


def get_config():
  c = default.get_config()
  c.data.name = "cifar100"
  c.data.num_labelled = 2000
  return c
