#!/usr/bin/env bash
# The device check: one call on one GPU (<= 9 minutes) that prints the figures issue 31
# asks of a lent accelerator, one `key=value` line each, for the aircraft config
# (configs/aircraft.py) on synthetic batches.
#
#   bash benchmarks/device_check.sh [--wheels=DIR] [--jobs=N] [--budget=SECONDS]
#   bash benchmarks/device_check.sh --smoke      # the same sequence on CPU, tiny sizes
#   DRY_RUN=1 bash benchmarks/device_check.sh     # the parts it would run, and their keys
#
# First the environment: python, jax, jaxlib, flax, optax, orbax, chex, numpy versions,
# `jax.devices()` and the device kind. Then each part in its own process under
# `timeout`; a part that fails or runs out of time prints `<key>=error` for each of its
# figures (and a `# ...` line saying why), and the rest go on:
#   base_*            the step with the GPU settings: model.conditional=off,
#                     model.depthwise_impl=lax, model.dtype=bfloat16, train.remat=layer;
#                     also program_<p>_compile_s / _compiled_gib for every program
#                     of the sandwich (<p>: teacher_<largest px>, subnet_<px> for every
#                     training resolution, update), and base_min_subnet_s /
#                     base_max_subnet_s
#   conditional_on_*  model.conditional=on (lax.cond/switch; XLA:GPU syncs per conditional),
#                     with conditional_on_min_subnet_s / _max_subnet_s
#   conditional_on_cmdbuf_*  the same with XLA_FLAGS=$CMDBUF (conditionals and loops
#                     kept on the GPU in command buffers)
#   depthwise_shift_*, dtype_float32_*, remat_none_*  one setting changed from base
#   augment_strong_<px>_images_per_s  the strong view (weak + AutoAugment) of the
#                     unlabelled batch, benchmarks/augment_throughput.py
#   input_images_per_s, input_per_core  benchmarks/input_pipeline.py, its last epoch
#                     (`input=missing` where that script is absent)
# Step figures per part (device_figures.py): _compile_s, _compiled_gib, _step_s,
# _images_per_s. Variants run at the largest resolution, 320 px, as the base's
# step does.
#
# The device machine reaches no network and carries its own jax (0.11.x); nothing is
# reinstalled. `--wheels=DIR` installs DIR's wheels whose distribution is not already
# installed (pure-python ones: ml_collections, ...) with `pip install --no-index
# --no-deps --target` into a temporary directory put first on PYTHONPATH. Make DIR
# where there is a network: `pip download --no-deps -d DIR ml_collections`.
#
# --jobs=N runs N parts side by side: their compiles overlap (XLA compiles on the host
# CPUs), while a lock lets one part at a time run its timed steps. Compile figures of
# parts side by side include that contention. --budget bounds the whole call: each part
# gets the time left, less a reserve for the parts after it.
set -u
cd "$(dirname "$0")/.."

smoke=0 wheels="" jobs="" budget=""
for arg in "$@"; do
  case "$arg" in
    --smoke) smoke=1 ;;
    --wheels=*) wheels="${arg#*=}" ;;
    --jobs=*) jobs="${arg#*=}" ;;
    --budget=*) budget="${arg#*=}" ;;
    *) echo "device_check.sh: unknown argument '$arg'; allowed: --smoke --wheels=DIR" \
            "--jobs=N --budget=SECONDS" >&2; exit 2 ;;
  esac
done

start=$(date +%s)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
PYTHON=${PYTHON:-python}

if [ -n "$wheels" ]; then
  if [ ! -d "$wheels" ]; then
    echo "device_check.sh: --wheels=$wheels is not a directory" >&2; exit 2
  fi
  mkdir -p "$tmp/site"
  for whl in "$wheels"/*.whl; do
    [ -e "$whl" ] || continue
    dist=$(basename "$whl" | cut -d- -f1)
    if "$PYTHON" -c 'import importlib.metadata as m, sys; m.version(sys.argv[1])' "$dist" \
        2>/dev/null; then
      continue  # installed already: keep the machine's (pinned) version
    fi
    "$PYTHON" -m pip install --quiet --no-index --no-deps --target "$tmp/site" "$whl" \
      || echo "# wheel $whl did not install"
  done
  export PYTHONPATH="$tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}

CMDBUF="--xla_gpu_enable_command_buffer=FUSION,CUBLAS,CUBLASLT,CUDNN,CUSTOM_CALL,CONDITIONAL,WHILE"
config=configs/aircraft.py
if [ "$smoke" = 1 ]; then
  export JAX_PLATFORMS=cpu
  # Each part may take what is left of the budget: CPU compiles are the slow part.
  jobs=${jobs:-2} budget=${budget:-290} steps=1 resolutions="32" largest=32 cap=$budget
  # One random subnet and the labelled loss in the tiny_lite space: the smallest step
  # program that still has every part (the smoke checks the script, not the figures);
  # tiny_lite's step compiles in about 30% less CPU time than tiny's.
  sizes=(--config.model.space=tiny_lite --config.train.batch_size=4
         --config.train.unlabelled_batch_size=4 --config.train.num_random=1
         --config.loss.variant=lab)
  input_args=(--jpegs=16 --size=200x140 --threads=2 --batch=4 --image_size=32 --epochs=2)
  augment_args=(--batch=4 --repeats=2)
else
  jobs=${jobs:-3} budget=${budget:-530} steps=5 resolutions="192 224 256 288 320" largest=320
  cap=0  # each part's own timeout
  sizes=()
  input_args=(--jpegs=512 --size=1000x700 --threads=2) augment_args=(--batch=32 --repeats=10)
  # Parts side by side share the GPU: allocate on demand, not 75% each.
  export XLA_PYTHON_CLIENT_PREALLOCATE=false
fi

"$PYTHON" - <<'EOF' || echo "# environment: python could not import jax"
import importlib.metadata as m
import platform
print(f"python={platform.python_version()}")
for dist in ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "chex", "numpy",
             "ml_collections"):
  try:
    print(f"{dist}={m.version(dist)}")
  except m.PackageNotFoundError:
    print(f"{dist}=absent")
import jax
print(f"backend={jax.default_backend()}")
print(f"devices={jax.devices()}")
print(f"device_kind={jax.devices()[0].device_kind}")
EOF
echo "base=conditional:off,depthwise_impl:lax,dtype:bfloat16,remat:layer"

res_tuple="($(echo "$resolutions" | tr ' ' ','),)"
base=(--config.model.conditional=off --config.model.depthwise_impl=lax
      --config.model.dtype=bfloat16 --config.train.remat=layer)
figures=(--config="$config" "${sizes[@]}" --steps="$steps" --lock="$tmp/lock")

# Parts: name, timeout (s), expected keys, then the command (run with `env`).
names=() timeouts=() keys=() commands=()
part() {
  names+=("$1") timeouts+=("$(( cap > 0 ? cap : $2 ))") keys+=("$3")
  shift 3
  local quoted
  printf -v quoted '%q ' "$@"
  commands+=("$quoted")
}
step_keys() { echo "$1_compile_s $1_compiled_gib $1_step_s $1_images_per_s"; }

program_keys=""  # the sandwich's programs (device_figures.py's key_of)
for p in "teacher_$largest" $(printf 'subnet_%s ' $resolutions) update; do
  program_keys+="program_${p}_compile_s program_${p}_compiled_gib "
done
one_res="--config.model.resolutions=($largest,)"
part base 240 "$program_keys$(step_keys base) base_min_subnet_s base_max_subnet_s" \
  "$PYTHON" benchmarks/device_figures.py "${figures[@]}" "${base[@]}" --prefix=base \
  --config.model.resolutions="$res_tuple" --programs --compile_threads=5 --subnets
variant() {  # name, the override that differs from base, extra env (or ""), [--subnets]
  local name=$1 override=$2 envs=$3 extra_keys="" flags=()
  if [ "${4:-}" = --subnets ]; then
    extra_keys=" ${name}_min_subnet_s ${name}_max_subnet_s" flags=(--subnets)
  fi
  local settings=() setting
  for setting in "${base[@]}"; do  # base, less the setting this variant changes
    [ "${setting%%=*}" = "${override%%=*}" ] || settings+=("$setting")
  done
  part "$name" 150 "$(step_keys "$name")$extra_keys" env ${envs:+"$envs"} "$PYTHON" \
    benchmarks/device_figures.py "${figures[@]}" "${settings[@]}" "$override" "$one_res" \
    --prefix="$name" ${flags[@]+"${flags[@]}"}
}
variant conditional_on --config.model.conditional=on "" --subnets
variant conditional_on_cmdbuf --config.model.conditional=on "XLA_FLAGS=${XLA_FLAGS:-} $CMDBUF"
variant remat_none --config.train.remat=none ""
variant dtype_float32 --config.model.dtype=float32 ""
variant depthwise_shift --config.model.depthwise_impl=shift ""
part augment 90 "augment_strong_${largest}_images_per_s" \
  "$PYTHON" benchmarks/augment_throughput.py --sizes="$largest" --programs=strong \
  "${augment_args[@]}"
if [ -f benchmarks/input_pipeline.py ]; then
  part input 120 "input_images_per_s input_per_core" \
    "$PYTHON" benchmarks/input_pipeline.py "${input_args[@]}"
else
  echo "input=missing"
fi

# Turns a part's output into key=value lines: device_figures prints them as they are;
# augment_throughput and input_pipeline print their own formats.
normalise() {
  sed -n -e 's/^program=\([a-z]*\) size=\([0-9]*\) .*images_per_s=\([0-9.e+-]*\).*/augment_\1_\2_images_per_s=\3/p' \
         -e 's/^epoch=[0-9]* images_per_s=\([0-9.e+-]*\) per_core=\([0-9.e+-]*\).*/input_images_per_s=\1\ninput_per_core=\2/p' \
         -e '/^[a-z0-9_]*=[-0-9.e+]*$/p' -e '/^# /p' "$1" \
    | awk -F= '/^# /{print; next} {last[$1]=$0; order[$1]=NR} END{for (k in last) print order[k] "\t" last[k]}' \
    | sort -n | cut -f2-
}
report() {  # index: prints the part's figures, `<key>=error` for each one missing
  local i=$1 out="$tmp/part$1.out" rc
  rc=$(cat "$tmp/part$i.rc" 2>/dev/null || echo skipped)
  normalise "$out" > "$tmp/part$i.kv"
  for k in ${keys[$i]}; do
    line=$(grep -m1 "^$k=" "$tmp/part$i.kv")
    if [ -n "$line" ]; then echo "$line"; else echo "$k=error"; fi
  done
  grep '^# ' "$tmp/part$i.kv"
  if [ "$rc" != 0 ]; then
    echo "# part ${names[$i]}: exit $rc ($([ "$rc" = 124 ] && echo timeout || echo failed));" \
         "$(grep -v '^\s*$' "$tmp/part$i.err" 2>/dev/null | tail -n 1 | cut -c1-300)"
  fi
}

n=${#names[@]} next_report=0 running=0
if [ "${DRY_RUN:-0}" = 1 ]; then  # the parts, their timeouts and keys; nothing runs
  for ((i = 0; i < n; i++)); do
    echo "part ${names[$i]} timeout=${timeouts[$i]} keys=${keys[$i]// /,}: ${commands[$i]}"
  done
  exit 0
fi
for ((i = 0; i < n; i++)); do
  left=$(( budget - ($(date +%s) - start) ))
  limit=${timeouts[$i]}
  (( limit > left )) && limit=$left
  if (( limit < 10 )); then
    echo skipped > "$tmp/part$i.rc"; : > "$tmp/part$i.out"
    echo "out of the ${budget} s budget" > "$tmp/part$i.err"
  else
    ( eval "timeout --kill-after=10 $limit ${commands[$i]}" > "$tmp/part$i.out" \
        2> "$tmp/part$i.err"; echo $? > "$tmp/part$i.rc" ) &
    running=$((running + 1))
    if (( running >= jobs )); then wait -n; running=$((running - 1)); fi
  fi
  while (( next_report < n )) && [ -f "$tmp/part$next_report.rc" ]; do
    report "$next_report"; next_report=$((next_report + 1))
  done
done
wait
for ((; next_report < n; next_report++)); do report "$next_report"; done
echo "device_check_s=$(( $(date +%s) - start ))"
