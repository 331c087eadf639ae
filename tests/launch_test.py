"""launch/ scripts: syntax, and the commands they would run (DRY_RUN=1)."""

import os
import re
import subprocess

import pytest

from helpers.paths import ROOT

LAUNCH = os.path.join(ROOT, "launch")


def _dry(script: str, *args: str, **env: str) -> list[str]:
  r = subprocess.run(["bash", os.path.join(LAUNCH, script), *args], capture_output=True,
                     text=True, cwd=ROOT, env=dict(os.environ, DRY_RUN="1", **env), timeout=60)
  assert r.returncode == 0, r.stderr
  return r.stdout.splitlines()


def test_scripts_parse():
  for script in ("tpu_pod.sh", "slurm_gpu.sbatch", "sweep.sh"):
    subprocess.run(["bash", "-n", os.path.join(LAUNCH, script)], check=True)


def test_sweep_covers_configs_variants_and_seeds():
  lines = _dry("sweep.sh", "/runs", "0", "1")
  assert len(lines) == 6 * 4 * 2
  assert lines[0].split() == ["python", "-m", "tofa_jax.main", "--config=configs/aircraft.py",
                              "--workdir=/runs/aircraft/lab/seed0",
                              "--config.loss.variant=lab", "--config.seed=0"]
  workdirs = {ln.split()[4] for ln in lines}
  assert len(workdirs) == 48
  for ds in ("aircraft", "cars", "flowers", "pets", "cifar10", "cifar100"):
    assert os.path.isfile(os.path.join(ROOT, "configs", f"{ds}.py"))
    assert sum(f"--config=configs/{ds}.py" in ln for ln in lines) == 8
  assert len(_dry("sweep.sh", "/runs")) == 6 * 4 * 3  # seeds 0 1 2 by default
  slurm = _dry("sweep.sh", "/runs", "0", RUN="sbatch --nodes=1 launch/slurm_gpu.sbatch")
  assert slurm[0].startswith("sbatch --nodes=1 launch/slurm_gpu.sbatch --config=")


# Cloud TPU's software version per generation (cloud.google.com/tpu/docs/runtimes).
GENERATIONS = {"v4-32": "tpu-ubuntu2204-base", "v5litepod-64": "v2-alpha-tpuv5-lite",
               "v5p-128": "v2-alpha-tpuv5", "v6e-16": "v2-alpha-tpuv6e"}
SETUP = ("--command=set -e; rm -rf ~/tofa_jax && mkdir -p ~/tofa_jax && tar -xzf "
         "~/tofa_jax_src.tgz -C ~/tofa_jax\\n"
         "python3 -m pip install -q --user uv==0.13.8\\n"
         "~/.local/bin/uv venv -q --clear --python 3.11 ~/tofa_venv\\n"
         "~/.local/bin/uv pip install -q --python ~/tofa_venv/bin/python -e ~/tofa_jax "
         "\"jax[tpu]==0.10.2\" gcsfs google-cloud-storage")


@pytest.mark.parametrize("tpu_type", sorted(GENERATIONS))
def test_tpu_pod_creates_each_generation_with_its_runtime_then_installs_and_runs(tpu_type):
  lines = _dry("tpu_pod.sh", "--config=configs/aircraft.py", "--workdir=gs://b/run",
               "--config.train.steps=5", TPU_NAME="tofa", TPU_ZONE="us-central2-b",
               TPU_TYPE=tpu_type)
  assert len(lines) == 5
  assert lines[0].split() == ["gcloud", "compute", "tpus", "tpu-vm", "create", "tofa",
                              f"--accelerator-type={tpu_type}",
                              f"--version={GENERATIONS[tpu_type]}", "--zone=us-central2-b"]
  assert lines[1].startswith("tar -C ") and lines[2].startswith(
      "gcloud compute tpus tpu-vm scp ")
  zone = " --zone=us-central2-b "
  assert lines[3] == f"gcloud compute tpus tpu-vm ssh tofa --worker=all $'{SETUP}'{zone}"
  assert lines[4] == (
      "gcloud compute tpus tpu-vm ssh tofa --worker=all --command=cd\\ ~/tofa_jax\\ "
      "\\&\\&\\ .\\ ~/tofa_venv/bin/activate\\ \\&\\&\\ python\\ -m\\ tofa_jax.main"
      "\\ --distributed=on\\ --config=configs/aircraft.py\\ --workdir=gs://b/run"
      f"\\ --config.train.steps=5{zone}")


def test_tpu_pod_python_agrees_with_setup_py():
  with open(os.path.join(ROOT, "setup.py")) as f:
    (required,) = re.findall(r'python_requires=">=(\d+)\.(\d+)"', f.read())
  with open(os.path.join(LAUNCH, "tpu_pod.sh")) as f:
    (venv,) = re.findall(r"uv venv .*--python (\d+)\.(\d+) ", f.read())
  assert tuple(map(int, venv)) >= tuple(map(int, required)) >= (3, 11)  # jax 0.10.2


def test_tpu_pod_refuses_an_unknown_type_unless_a_version_is_given():
  env = dict(os.environ, DRY_RUN="1", TPU_NAME="tofa", TPU_ZONE="z", TPU_TYPE="v7x-8")
  r = subprocess.run(["bash", os.path.join(LAUNCH, "tpu_pod.sh"), "--workdir=gs://b/r"],
                     capture_output=True, text=True, env=env, timeout=60)
  assert r.returncode == 2 and r.stderr.strip() == (
      "error: TPU_TYPE=v7x-8 has no default software version; use v4-N, v5litepod-N, "
      "v5p-N or v6e-N (or v2-N, v3-N), or set TPU_VERSION")
  lines = _dry("tpu_pod.sh", "--workdir=gs://b/r", TPU_NAME="tofa", TPU_ZONE="z",
               TPU_TYPE="v7x-8", TPU_VERSION="v2-alpha-tpu7x")
  assert "--version=v2-alpha-tpu7x" in lines[0].split()
  r = subprocess.run(["bash", os.path.join(LAUNCH, "tpu_pod.sh")], capture_output=True,
                     text=True, env={**os.environ, "DRY_RUN": "1"}, timeout=60)
  assert r.returncode != 0 and "set TPU_NAME" in r.stderr


def test_slurm_starts_one_task_per_gpu_that_sees_every_gpu_of_its_node(tmp_path):
  # A fake srun and venv: the script runs as sbatch would run it, and srun says what
  # it was asked to start.
  bin_dir, venv = tmp_path / "bin", tmp_path / "venv"
  bin_dir.mkdir()
  (venv / "bin").mkdir(parents=True)
  (venv / "bin" / "activate").write_text("")
  (bin_dir / "srun").write_text('#!/bin/bash\nprintf "%s\\n" "srun $*"\n')
  (bin_dir / "srun").chmod(0o755)
  r = subprocess.run(["bash", os.path.join(LAUNCH, "slurm_gpu.sbatch"), "--config=c.py",
                      "--workdir=/shared/w"], capture_output=True, text=True, cwd=ROOT,
                     timeout=60, env=dict(os.environ, VENV=str(venv),
                                          PATH=f"{bin_dir}:{os.environ['PATH']}"))
  assert r.returncode == 0, r.stderr
  assert r.stdout.splitlines() == ["srun --kill-on-bad-exit=1 --gpu-bind=none python -m "
                                   "tofa_jax.main --config=c.py --workdir=/shared/w"]
  with open(os.path.join(LAUNCH, "slurm_gpu.sbatch")) as f:
    sbatch = dict((ln[len("#SBATCH --"):].strip() + "=").split("=")[:2] for ln in f
                  if ln.startswith("#SBATCH --"))
  # JAX gives task SLURM_LOCALID the GPU of that index: as many tasks as GPUs per node,
  # none bound to a GPU of its own.
  assert sbatch["ntasks-per-node"] == sbatch["gpus-per-node"] == "8"
  assert "gpus-per-task" not in sbatch and "gpus" not in sbatch and "requeue" in sbatch
