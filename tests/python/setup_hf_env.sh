#!/usr/bin/env bash
# Creates (or checks) the Python environment used by the Hugging Face interop tests:
# a venv at <repo>/.cache/hf-venv on top of Debian's CPU-only torch, with transformers and peft from PyPI.
#
#   deno task setup-python          # or: bash tests/python/setup_hf_env.sh
#
# Idempotent: every step first checks whether it is already done and says so. About 165 MB; no CUDA download:
# Debian's python3-torch 1.13 reports version 1.13.0a0, which does not satisfy peft's and accelerate's
# "torch>=1.13" pins, so those two are installed with --no-deps (their other requirements are listed explicitly).
# The tests find the venv by itself (tests/hf_python.ts); FEDLODROP_PYTHON=/path/to/python overrides it.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$REPO/.cache/hf-venv"
SYS_PY=/usr/bin/python3
TRANSFORMERS_VERSION=4.44.2
PEFT_VERSION=0.12.0
ACCELERATE_VERSION=0.34.2

say() { echo "setup-python: $*"; }
die() {
  echo "setup-python: error: $*" >&2
  exit 1
}

# 1. System python with torch, numpy and venv (Debian packages; CPU only).
if [ ! -x "$SYS_PY" ]; then
  die "$SYS_PY not found; this recipe needs Debian/Ubuntu's python3 (apt-get install python3)"
fi
if "$SYS_PY" -c "import torch, numpy, venv, ensurepip" 2>/dev/null; then
  say "system python already has torch, numpy and venv ($("$SYS_PY" -c 'import torch; print("torch", torch.__version__)'))"
else
  APT=(apt-get)
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "torch/numpy/venv missing for $SYS_PY and not root (no sudo): run as root: apt-get install python3-torch python3-numpy python3-venv"
    APT=(sudo apt-get)
  fi
  say "installing python3-torch python3-numpy python3-venv with apt-get"
  "${APT[@]}" update
  DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y --no-install-recommends python3-torch python3-numpy python3-venv
  "$SYS_PY" -c "import torch, numpy, venv, ensurepip" || die "$SYS_PY still cannot import torch, numpy, venv after apt-get"
fi

# 2. The venv (sees the system torch through --system-site-packages).
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  say "venv already exists at $VENV"
else
  if [ -e "$VENV" ]; then
    say "removing a broken venv at $VENV"
    rm -rf "$VENV"
  fi
  say "creating venv at $VENV (--system-site-packages)"
  mkdir -p "$(dirname "$VENV")"
  "$SYS_PY" -m venv --system-site-packages "$VENV"
fi
PY="$VENV/bin/python"

# 3. transformers, peft, accelerate at the pinned versions.
installed_ok() {
  "$PY" - "$TRANSFORMERS_VERSION" "$PEFT_VERSION" "$ACCELERATE_VERSION" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
want = dict(zip(("transformers", "peft", "accelerate"), sys.argv[1:]))
sys.exit(0 if all(version(p) == v for p, v in want.items()) else 1)
EOF
}
if installed_ok; then
  say "transformers $TRANSFORMERS_VERSION, peft $PEFT_VERSION, accelerate $ACCELERATE_VERSION already installed"
else
  say "installing transformers $TRANSFORMERS_VERSION and its requirements with pip"
  "$PY" -m pip install --disable-pip-version-check -q "transformers==$TRANSFORMERS_VERSION" safetensors \
    huggingface_hub tokenizers pyyaml tqdm psutil packaging
  say "installing peft $PEFT_VERSION and accelerate $ACCELERATE_VERSION with --no-deps (keeps Debian's torch)"
  "$PY" -m pip install --disable-pip-version-check -q --no-deps "peft==$PEFT_VERSION" \
    "accelerate==$ACCELERATE_VERSION"
fi

# 4. Check the result the way the tests do.
"$PY" -c "import torch, transformers, peft; print('setup-python: ok:', '$PY', '| torch', torch.__version__, '| transformers', transformers.__version__, '| peft', peft.__version__)" ||
  die "$PY cannot import torch, transformers and peft"
