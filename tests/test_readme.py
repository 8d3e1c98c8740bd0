"""The README stays true: its pipeline file and every command it shows run here."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from batchproc.cli import app

README = (Path(__file__).parent.parent / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_the_readme_shows_commands() -> None:
    assert len(blocks("console")) == 1 and len(blocks("yaml")) == 2


@pytest.mark.parametrize("line", [line for line in blocks("console")[0].splitlines() if line.startswith("$ ")])
def test_readme_command_runs(line: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    import imageio.v3 as iio
    import tifffile

    monkeypatch.chdir(tmp_path)
    tifffile.imwrite("scan.tif", np.random.default_rng(1).integers(0, 255, size=(10, 64, 48)).astype(np.uint8))
    Path("pipeline.yaml").write_text(blocks("yaml")[0])
    Path("slurm.yaml").write_text(blocks("yaml")[1])
    Path("slices").mkdir()
    for i in range(3):
        iio.imwrite(f"slices/s{i}.png", np.random.default_rng(i).integers(0, 255, size=(32, 40)).astype(np.uint8))
    runner = CliRunner()
    if "edges.zarr" in line and " run " not in line:
        assert runner.invoke(app, ["run", "scan.tif", "edges.zarr", "--pipeline", "pipeline.yaml", "-q"]).exit_code == 0
    if "s3://my-bucket" in line:  # the S3-compatible server's bucket stands for the user's
        line = line.replace("s3://my-bucket", request.getfixturevalue("s3"))
    args = shlex.split(line[2:])
    assert args[0] == "batchproc"
    result = runner.invoke(app, args[1:])
    assert result.exit_code == 0, result.output


def test_readme_python_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tifffile

    monkeypatch.chdir(tmp_path)
    tifffile.imwrite("scan.tif", np.random.default_rng(2).integers(0, 255, size=(6, 40, 40)).astype(np.uint8))
    code = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)[0]
    exec(compile(code, "README.md", "exec"), {})  # the README's own example, as users run it
    assert Path("mask.ome.zarr/zarr.json").exists()
