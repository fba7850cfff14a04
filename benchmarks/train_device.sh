#!/usr/bin/env bash
# A training stage on a lent GPU as one call (the device tool runs it in a copy of this tree):
#
#   here:   python benchmarks/train_device.py prepare      # build/device/: compact photos + wheels
#   device: bash benchmarks/train_device.sh                 # carry: ["build/device"]; writes $OUT
#
# It installs only what the device lacks, from the carried wheels and with --no-deps, so the
# device's own torch is never touched; then trains from the shipped export for $MINUTES minutes
# (default 8, probe and export included) on $DEVICE (default cuda) and leaves the export, its
# learning log and train_device.json in $OUT. Extra arguments go to `train_device.py run`.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-runs/device}"
MINUTES="${MINUTES:-8}"
DEVICE="${DEVICE:-cuda}"
WHEELS=build/device/wheels
mkdir -p "$OUT"

if ! python -c "import neurcodec" 2>/dev/null; then
    for pair in pytorch_msssim:pytorch-msssim safetensors:safetensors constriction:constriction typing_extensions:typing-extensions; do
        python -c "import ${pair%%:*}" 2>/dev/null || python -m pip install -q --no-deps --no-index --find-links "$WHEELS" "${pair##*:}"
    done
    # The project itself, without dependencies; where pip cannot build it, from the source tree.
    python -m pip install -q --no-deps --no-build-isolation -e . 2>/dev/null || export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
fi
python -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.cuda.is_available())" | tee "$OUT/environment.txt"
if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,memory.total --format=csv | tee -a "$OUT/environment.txt"; fi
exec python benchmarks/train_device.py run --device "$DEVICE" --minutes "$MINUTES" --out "$OUT" "$@"
