"""Shared fixtures and settings for the whole suite."""

from __future__ import annotations

import os

import dask
import numpy as np
import pytest
from daskcluster import DaskCluster
from hypothesis import HealthCheck, settings

# One hypothesis profile for the suite; BATCHPROC_EXAMPLES raises the example count
# for a long local run (the closing notes quote such runs).
settings.register_profile(
    "batchproc",
    max_examples=int(os.environ.get("BATCHPROC_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
    # CI replays the same examples every run (a red CI is then reproducible);
    # local runs explore new ones.
    derandomize=bool(os.environ.get("CI")),
)
settings.load_profile("batchproc")

# The suite holds the compiled kernels to the contract: each test that asks for
# them runs them, compiled where first called, in this process and in every
# process it starts (the environment carries it). tests/engine/test_dispatch.py asks
# for the other modes itself.
os.environ.setdefault("BATCHPROC_COMPILE", "wait")


class ComputeForbidden(AssertionError):
    """Raised by the ``no_compute`` scheduler: something computed while it should not."""


def _forbidden_scheduler(dsk, keys, **kwargs):  # pragma: no cover - its call is the failure
    raise ComputeForbidden(f"a computation was started for keys {list(keys)[:3]}")


@pytest.fixture
def no_compute():
    """A dask scheduler that raises if anything computes: building a graph is fine."""
    with dask.config.set(scheduler=_forbidden_scheduler):
        yield


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261124)


# ------------------------------------------------------------ a real dask cluster


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory):
    """Two single-thread workers behind a scheduler, shared by a test module."""
    cluster = DaskCluster(2, tmp_path_factory.mktemp("cluster"))
    try:
        cluster.wait(2)
        yield cluster
    finally:
        cluster.close()


def _imported_after_cli(commands: list[list[str]], modules: list[str]) -> dict[str, bool]:
    import subprocess
    import sys

    script = f"""
import sys
from batchproc.cli import app
for args in {commands!r}:
    try:
        app(args)
    except SystemExit as exit:
        assert exit.code in (0, None), exit.code
print({{name: name in sys.modules for name in {modules!r}}})
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    import ast

    return ast.literal_eval(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def imported_after_cli():
    """Run CLI commands (argument lists) in a fresh process; which of the named
    modules it imported."""
    return _imported_after_cli


# ------------------------------------------------------------ a real S3-compatible server


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory):
    """moto's S3 server on 127.0.0.1 (a process of its own), shared by the session."""
    from s3server import S3Server

    server = S3Server(tmp_path_factory.mktemp("s3"))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def s3(s3_server, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest):
    """A fresh bucket on the S3 server, and its credentials and endpoint in the
    environment, as a user's would be; the bucket's URL."""
    import re as regex

    from batchproc.io import remote

    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(remote, "_CLIENTS", {})  # clients made with other settings go
    bucket = regex.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:50].strip("-") + "-" + str(abs(hash(request.node.nodeid)) % 10**6)
    return s3_server.bucket(bucket)


# ------------------------------------------------------------ a real headless browser

CHROMIUM = "/usr/bin/chromium"
#: Headless, no sandbox (tests run as root), and nothing that reaches the network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _install_chromium() -> str | None:
    """Install Debian's chromium package; None when done, else why not."""
    import shutil
    import subprocess

    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return f"{CHROMIUM} is missing and installing Debian's chromium package needs root"
    if shutil.which("apt-get") is None:
        return f"{CHROMIUM} is missing and there is no apt-get to install Debian's chromium package"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-q", "chromium"]
    # Package lists may be missing or stale on a fresh machine: update once, then try again.
    for commands in ([install], [["apt-get", "-o", "DPkg::Lock::Timeout=300", "update", "-q"], install]):
        try:
            for command in commands:
                done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
                if done.returncode != 0:
                    break
        except subprocess.TimeoutExpired:
            return f"{CHROMIUM} is missing and `{' '.join(command)}` did not finish in 900 s"
        if os.path.exists(CHROMIUM):
            return None
    if done.returncode == 0:
        return f"{CHROMIUM} is still missing after `apt-get install chromium` succeeded"
    tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
    return f"{CHROMIUM} is missing and `{' '.join(command)}` failed: {tail[0]}"


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of Debian's Chromium, installed here (apt-get, as root) where it is
    missing; the tests that need it are skipped, saying why, only where it cannot be."""
    if not os.path.exists(CHROMIUM):
        reason = _install_chromium()
        if reason is not None:
            pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium: str):
    """A headless Chromium driven by Playwright, shared by the session."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, timeout=120_000)
        try:
            yield launched
        finally:
            launched.close()
