"""docker/: no Docker engine runs here, so the compose file is parsed and its
services' commands are run as the processes they would be in the containers
(addresses moved to 127.0.0.1, /data to a temporary folder)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage as ndi
import tifffile
import yaml
import zarr
from daskcluster import free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())


def test_dockerfile_is_slim_non_root_with_the_batchproc_entry_point() -> None:
    lines = [line.strip() for line in (ROOT / "docker" / "Dockerfile").read_text().splitlines()]
    assert any(line.startswith("FROM python:") and line.endswith("-slim") for line in lines)
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert 'ENTRYPOINT ["batchproc"]' in lines
    assert any('pip install ".[cluster]"' in line for line in lines)
    # Built with its kernels compiled, into a cache every container of it shares.
    assert any(line.startswith("NUMBA_CACHE_DIR=/opt/batchproc/numba-cache") for line in lines)
    assert any("batchproc warm" in line for line in lines)


def test_compose_has_a_scheduler_two_workers_and_a_job_on_one_image() -> None:
    services = compose()["services"]
    assert set(services) == {"scheduler", "worker-1", "worker-2", "job"}
    assert {s["image"] for s in services.values()} == {"batchproc:latest"}
    assert all(s["build"]["dockerfile"] == "docker/Dockerfile" for s in services.values())
    assert services["job"]["command"][0] == "run" and "entrypoint" not in services["job"]


def _as_process(service: dict, data: Path, port: int, dashboard: int) -> list[str]:
    """The container's command line, on this machine."""
    program = service.get("entrypoint", ["batchproc"])
    moved = []
    for arg in [*program, *service["command"]]:
        arg = arg.replace("tcp://scheduler:8786", f"tcp://127.0.0.1:{port}").replace("/data/", f"{data}/")
        arg = {"0.0.0.0": "127.0.0.1", "8786": str(port), "0.0.0.0:8787": f"127.0.0.1:{dashboard}"}.get(arg, arg)
        moved.append(arg)
    moved[0] = str(BIN / moved[0])
    return moved


@pytest.mark.slow
def test_compose_commands_run_the_job_on_their_cluster(tmp_path: Path) -> None:
    services = compose()["services"]
    data = np.random.default_rng(3).integers(0, 4000, size=(16, 64, 64)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "input.tif", data)
    (tmp_path / "pipeline.yaml").write_text("version: 1\nsteps:\n  - op: gaussian_filter\n    sigma: 2\n")
    port, dashboard = free_port(), free_port()
    servers = []
    try:
        for name in ("scheduler", "worker-1", "worker-2"):
            command = _as_process(services[name], tmp_path, port, dashboard)
            if name != "scheduler":
                command += ["--host", "127.0.0.1", "--no-dashboard"]  # containers have their own network
            servers.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path))
            if name == "scheduler":
                from distributed import Client

                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    try:
                        with Client(f"tcp://127.0.0.1:{port}", timeout="2s"):
                            break
                    except OSError:
                        time.sleep(0.2)
        from distributed import Client

        with Client(f"tcp://127.0.0.1:{port}", timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        job = subprocess.run(_as_process(services["job"], tmp_path, port, dashboard), capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert job.returncode == 0, job.stderr
    finally:
        for proc in servers:
            proc.terminate()
        for proc in servers:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
    got = zarr.open_array(str(tmp_path / "output.ome.zarr" / "0"), mode="r")[:]
    assert np.array_equal(got, ndi.gaussian_filter(data, 2))
