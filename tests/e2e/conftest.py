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


# ---------------------------------------------------------------------------------------------
# sgl-server fixtures. The binary is $SGL_SERVER_BIN, else $SGL_BIN_DIR/sgl-server (build/bin by
# default), so the tests can run against another build directory.
import signal
import socket
import sys
import time

SERVER_BIN = pathlib.Path(os.environ.get("SGL_SERVER_BIN", BIN / "sgl-server"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A running sgl-server on a free port; stop() sends SIGTERM and returns the exit status."""

    def __init__(self, model, *extra, api_key=None, startup_timeout=120):
        import requests

        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.api_key = api_key
        args = [str(SERVER_BIN), "--model-path", model, "--port", str(self.port), *extra]
        if api_key:
            args += ["--api-key", api_key]
        self.log = open(f"/tmp/sgl-server-e2e-{self.port}.log", "w+b")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + startup_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sgl-server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if requests.get(self.base_url + "/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.time() > deadline:
                self.proc.kill()
                raise RuntimeError(f"sgl-server did not become healthy:\n{self.output()}")
            time.sleep(0.1)

    def url(self, path):
        return self.base_url + path

    def headers(self):
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture(scope="session")
def server_factory(model_path):
    """Starts extra servers (other flags); they are stopped at the end of the session."""
    if not SERVER_BIN.exists():
        pytest.skip(f"{SERVER_BIN} not built")
    started = []

    def start(*extra, api_key=None):
        s = ServerProcess(model_path, *extra, api_key=api_key)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.fixture(scope="session")
def server(server_factory):
    """The shared sgl-server on the default model (metrics on, fixed seed)."""
    s = server_factory("--enable-metrics", "--random-seed", "1234", "--max-running-requests", "32")
    yield s
    rc = s.stop()
    assert rc == 0, f"sgl-server exited with {rc} on SIGTERM:\n{s.output()[-4000:]}"
