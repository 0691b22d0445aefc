"""Shared fixtures for the end-to-end tests: paths to the real binaries and the default model."""
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("SGL_BIN_DIR", ROOT / "build" / "bin"))
MODEL = pathlib.Path(os.environ.get("SGL_MODEL", ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"))


@pytest.fixture(scope="session")
def model_path():
    if not MODEL.exists():
        pytest.skip(f"default model not found at {MODEL} (run scripts/setup.sh)")
    return str(MODEL)


@pytest.fixture(scope="session")
def cli():
    exe = BIN / "sgl-cli"
    if not exe.exists():
        pytest.skip(f"{exe} not built")

    def run(*args, input=None, check=True, timeout=300):
        p = subprocess.run([str(exe), *args], input=input, capture_output=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"sgl-cli {args} failed ({p.returncode}): {p.stderr.decode(errors='replace')}")
        return p

    return run
