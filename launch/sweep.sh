#!/usr/bin/env bash
# The paper's sweep: the six dataset configs x the Table 4 loss variants x seeds.
#
#   launch/sweep.sh ROOT [SEED ...]          # seeds default to 0 1 2
#   RUN="sbatch --nodes=1 launch/slurm_gpu.sbatch" launch/sweep.sh /shared/tofa
#   RUN=launch/tpu_pod.sh launch/sweep.sh gs://BUCKET/tofa 0
#   DRY_RUN=1 launch/sweep.sh /tmp/sweep     # print the commands only
#
# Each run gets ROOT/<dataset>/<variant>/seed<S> as its workdir; a run that is already
# complete resumes at its last step and stops at once, so the sweep can be re-run after
# interruptions. RUN (default: python -m tofa_jax.main) receives main's arguments.
set -euo pipefail
ROOT="${1:?usage: launch/sweep.sh ROOT [SEED ...]}"
shift
SEEDS=("$@")
[[ ${#SEEDS[@]} -gt 0 ]] || SEEDS=(0 1 2)
read -r -a RUN_CMD <<< "${RUN:-python -m tofa_jax.main}"
DATASETS=(aircraft cars flowers pets cifar10 cifar100)
VARIANTS=(lab fm dist tofa)

for ds in "${DATASETS[@]}"; do
  for variant in "${VARIANTS[@]}"; do
    for seed in "${SEEDS[@]}"; do
      cmd=("${RUN_CMD[@]}" "--config=configs/${ds}.py" "--workdir=${ROOT}/${ds}/${variant}/seed${seed}"
           "--config.loss.variant=${variant}" "--config.seed=${seed}")
      if [[ "${DRY_RUN:-0}" == 1 ]]; then printf '%q ' "${cmd[@]}"; echo; else "${cmd[@]}"; fi
    done
  done
done
