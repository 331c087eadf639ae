"""Top-5 classes of one image under a converted or trained model.

  python -m tofa_jax.predict --params=DIR --image=PATH [--arch=checkpoint|max|min|FILE.json]

DIR is a directory written by `tofa_jax.convert_torch` (variables + meta.json),
or a palette member exported by `tofa_jax.palette` (a static subnet).
`--arch=checkpoint` (the default) runs the network the checkpoint holds; any
other subnet of its space can be named. The subnet is extracted to a static
Flax model (`api/member.py`, the Python API's `Member`), the image resized and
centre-cropped to the arch's resolution as meta.json says and normalised with
the mean/std stored with the params. It prints `rank. name (class i) p=...`;
the names are those stored with the member (the data's class names).
"""

from __future__ import annotations

import sys

from tofa_jax.api.member import Member, load_member
from tofa_jax.space import sampling
from tofa_jax.weights import export
from tofa_jax.weights.params_dir import load as load_params_dir


def predict(params_dir: str, image_path: str, arch_spec: str = "checkpoint", top: int = 5
            ) -> list[tuple[str | None, int, float]]:
  """[(class name or None, class index, probability)] of the `top` most probable classes."""
  if export.is_static(params_dir):  # a palette member: one fixed subnet
    if arch_spec != "checkpoint":
      raise ValueError(f"--arch={arch_spec}: {params_dir} holds one static subnet; omit --arch")
    member = load_member(params_dir)
  elif arch_spec == "checkpoint":
    member = load_member(params_dir)
  else:
    conv = load_params_dir(params_dir)
    member = Member.from_converted(conv, sampling.sample_named(conv.space, arch_spec))
  return member.predict(image_path, top_k=top)[0]


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
  for rank, (name, index, prob) in enumerate(result, 1):
    print(f"{rank}. {name if name is not None else '?'} (class {index}) p={prob:.4f}")


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
