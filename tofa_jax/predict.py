"""Top-5 classes of one image under a converted or trained model.

  python -m tofa_jax.predict --params=DIR --image=PATH [--arch=checkpoint|max|min|FILE.json]

DIR is a directory written by `tofa_jax.convert_torch` (variables + meta.json),
or a palette member exported by `tofa_jax.palette` (a static subnet).
`--arch=checkpoint` (the default) runs the network the checkpoint holds; any
other subnet of its space can be named. The subnet is extracted to a static
Flax model, the image resized and centre-cropped to the arch's resolution and
normalised with the mean/std stored with the params.
"""

from __future__ import annotations

import sys

import jax
import numpy as np

from tofa_jax.data import preprocess
from tofa_jax.model import static_net
from tofa_jax.space import arch as arch_lib
from tofa_jax.space import sampling
from tofa_jax.weights import export
from tofa_jax.weights.params_dir import load as load_params_dir


def predict(params_dir: str, image_path: str, arch_spec: str = "checkpoint", top: int = 5
            ) -> list[tuple[int, float]]:
  """[(class index, probability)] for the `top` most probable classes."""
  if export.is_static(params_dir):  # a palette member: one fixed subnet
    static = export.load(params_dir)
    if arch_spec != "checkpoint":
      raise ValueError(f"--arch={arch_spec}: {params_dir} holds one static subnet; omit --arch")
    model, variables, arch = static.model, static.variables, static.arch
    mean, std = static.mean, static.std
  else:
    conv = load_params_dir(params_dir)
    named = arch_spec != "checkpoint"
    arch = sampling.sample_named(conv.space, arch_spec) if named else conv.arch
    arch_lib.validate(conv.space, arch)
    model, variables = static_net.extract(conv.space, arch, conv.variables, conv.num_classes)
    mean, std = conv.mean, conv.std
  image = preprocess.load_image(image_path, arch.resolution)
  x = preprocess.normalize(image, mean, std)[None]
  logits = jax.jit(model.apply)(variables, x)
  probs = np.asarray(jax.nn.softmax(logits[0]))
  order = np.argsort(-probs)[:top]
  return [(int(i), float(probs[i])) for i in order]


def main(argv: list[str]) -> None:
  from absl import flags, logging

  logging.set_verbosity(logging.WARNING)  # orbax logs every file at INFO

  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments {argv[1:]}")
  f = flags.FLAGS
  try:
    for name in ("params", "image"):
      if not getattr(f, name):
        raise ValueError(f"--{name} is required")
    result = predict(f.params, f.image, f.arch, f.top)
  except ValueError as e:
    sys.exit(f"error: {e}")
  for rank, (index, prob) in enumerate(result, 1):
    print(f"{rank}: class {index}  p={prob:.4f}")


def _define_flags() -> None:
  from absl import flags

  flags.DEFINE_string("params", None, "directory written by tofa_jax.convert_torch or an "
                      "exported palette member")
  flags.DEFINE_string("image", None, "image file (JPEG, PNG, ...)")
  flags.DEFINE_string("arch", "checkpoint", "checkpoint | max | min | random:SEED | FILE.json")
  flags.DEFINE_integer("top", 5, "how many classes to print")


if __name__ == "__main__":
  from absl import app

  _define_flags()
  app.run(main)
