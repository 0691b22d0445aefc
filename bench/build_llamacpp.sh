#!/usr/bin/env bash
# Builds the peer for side-by-side benchmarks: llama.cpp's llama-bench and llama-server, from the
# llama.cpp source vendored in the llama-cpp-python source package on the Python package index
# (the same llama.cpp that the golden-data scripts use through the Python bindings).
# Output: $PEER_DIR/bin/{llama-bench,llama-batched-bench,llama-server,llama-cli} (default: build-peer/ in the repo).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
PEER_DIR="${PEER_DIR:-$ROOT/build-peer}"
if [ -x "$PEER_DIR/bin/llama-batched-bench" ] && [ -x "$PEER_DIR/bin/llama-server" ]; then
  echo "peer already built in $PEER_DIR"; exit 0
fi
mkdir -p "$PEER_DIR/src"
cd "$PEER_DIR/src"
if [ ! -d "llama_cpp_python-$VERSION" ]; then
  python3 -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d .
  tar xzf "llama_cpp_python-$VERSION.tar.gz"
fi
SRC="$PEER_DIR/src/llama_cpp_python-$VERSION/vendor/llama.cpp"
cmake -S "$SRC" -B "$PEER_DIR/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON \
  -DLLAMA_BUILD_SERVER=ON -DBUILD_SHARED_LIBS=OFF >/dev/null
ninja -C "$PEER_DIR/build" -j"$(nproc)" llama-bench llama-batched-bench llama-server llama-cli
mkdir -p "$PEER_DIR/bin"
for t in llama-bench llama-batched-bench llama-server llama-cli; do cp "$PEER_DIR/build/bin/$t" "$PEER_DIR/bin/"; done
echo "peer built: $PEER_DIR/bin"
