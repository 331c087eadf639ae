"""TOFA on pets (37 classes): 259 labelled training images (Table 2), the rest of
the training split unlabelled; section 4.2 defaults (configs/default.py).
Starts from AlphaNet's ImageNet supernet (init.checkpoint='alphanet', in
$TOFA_WEIGHTS_DIR or ~/.cache/tofa_jax/weights; the run says how to get it if missing):
it covers 21.42M of the maxnet's 21.49M parameters, all but the fresh 37-class head."""

from configs import default


def get_config():
  c = default.get_config()
  c.data.name = "pets"
  c.data.num_labelled = 259
  return c
