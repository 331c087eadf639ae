"""launch/ scripts: syntax, and the commands they would run (DRY_RUN=1)."""

import os
import subprocess

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


def test_tpu_pod_creates_ships_installs_and_runs_on_every_worker():
  lines = _dry("tpu_pod.sh", "--config=configs/aircraft.py", "--workdir=gs://b/run",
               "--config.train.steps=5", TPU_NAME="tofa", TPU_ZONE="us-central2-b",
               TPU_TYPE="v4-32")
  assert lines[0].startswith("gcloud compute tpus tpu-vm create tofa --accelerator-type=v4-32")
  ssh = [ln for ln in lines if " ssh tofa " in ln]
  assert len(ssh) == 2 and all("--worker=all" in ln for ln in ssh)
  assert "jax\\[tpu\\]==0.10.2" in ssh[0] or "jax[tpu]==0.10.2" in ssh[0]
  assert "python\\ -m\\ tofa_jax.main\\ --config=configs/aircraft.py\\ --workdir=gs://b/run" \
      "\\ --config.train.steps=5" in ssh[1]
  r = subprocess.run(["bash", os.path.join(LAUNCH, "tpu_pod.sh")], capture_output=True,
                     text=True, env={**os.environ, "DRY_RUN": "1"}, timeout=60)
  assert r.returncode != 0 and "set TPU_NAME" in r.stderr
