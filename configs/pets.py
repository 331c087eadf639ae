"""TOFA on pets (37 classes): 259 labelled training images (Table 2), the rest of
the training split unlabelled; section 4.2 defaults (configs/default.py)."""

from configs import default


def get_config():
  c = default.get_config()
  c.data.name = "pets"
  c.data.num_labelled = 259
  return c
