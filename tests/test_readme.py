"""The README and the documentation stay true: every command and every Python example
they show runs here.

In ``README.md`` and every page under ``docs/``:

- each ``console`` block's ``$ batchproc ...`` lines, and each ``bash`` block's
  ``batchproc ...`` lines, run in order in one folder (a later command may use what an
  earlier one wrote), through the typer app, and must exit 0;
- each page's ``python`` blocks run in order in one namespace, in one folder;
- a ``yaml`` or ``text`` block whose first line is ``# NAME.EXT`` is the file NAME.EXT
  in that folder, whole (a page's own files first, then the README's).

The folder holds ``scan.tif`` (10×64×48 uint8) and ``slices/s0.png`` ... ``s2.png``;
``s3://my-bucket`` stands for a bucket of the test's S3-compatible server. Commands
that cannot run here (placeholders, other machines) belong in ``text`` blocks.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from batchproc.cli import app

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(?P<language>[\w-]*)[^\n]*\n(?P<body>.*?)^```", flags=re.DOTALL | re.MULTILINE)


def blocks(page: Path, language: str) -> list[tuple[int, str]]:
    """The fenced blocks of ``language`` in ``page``: (line number, body)."""
    text = page.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m["body"]) for m in FENCE.finditer(text) if m["language"] == language]


def commands(body: str, language: str) -> list[str]:
    """The batchproc command lines of a console (``$ batchproc``) or bash block."""
    lines = [line.strip() for line in body.splitlines()]
    if language == "console":
        return [line[2:] for line in lines if line.startswith("$ batchproc ")]
    return [line for line in lines if line.startswith("batchproc ")]


def named_files(page: Path) -> dict[str, str]:
    """The yaml and text blocks of ``page`` that name their file on their first line."""
    files = {}
    for language in ("yaml", "text"):
        for _, body in blocks(page, language):
            first = body.splitlines()[0] if body.strip() else ""
            match = re.fullmatch(r"# ([\w.-]+\.\w+)", first.strip())
            if match:
                files[match[1]] = body
    return files


def label(page: Path, line: int) -> str:
    return f"{page.relative_to(ROOT)}:{line}"


COMMAND_BLOCKS = [
    pytest.param(page, line, found, id=label(page, line))
    for page in PAGES
    for language in ("console", "bash")
    for line, body in blocks(page, language)
    if (found := commands(body, language))
]
PYTHON_PAGES = [pytest.param(page, id=str(page.relative_to(ROOT))) for page in PAGES if blocks(page, "python")]


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import imageio.v3 as iio
    import tifffile

    monkeypatch.chdir(tmp_path)
    tifffile.imwrite("scan.tif", np.random.default_rng(1).integers(0, 255, size=(10, 64, 48)).astype(np.uint8))
    Path("slices").mkdir()
    for i in range(3):
        iio.imwrite(f"slices/s{i}.png", np.random.default_rng(i).integers(0, 255, size=(32, 40)).astype(np.uint8))
    return tmp_path


def write_files(page: Path) -> None:
    for name, body in {**named_files(ROOT / "README.md"), **named_files(page)}.items():
        Path(name).write_text(body)


def test_the_pages_show_commands_and_examples() -> None:
    readme = ROOT / "README.md"
    shown = [c for line, body in blocks(readme, "console") for c in commands(body, "console")]
    assert len(shown) >= 5 and {"pipeline.yaml"} <= set(named_files(readme))
    assert len(blocks(readme, "python")) == 1
    pages = {block.values[0] for block in COMMAND_BLOCKS}
    # The user guide's pages all show commands that run; so do getting started and the README.
    assert {readme, ROOT / "docs" / "getting-started.md"} | set((ROOT / "docs" / "guide").glob("*.md")) <= pages
    assert len(COMMAND_BLOCKS) >= 10 and len(PYTHON_PAGES) >= 3


@pytest.mark.parametrize(("page", "line", "lines"), COMMAND_BLOCKS)
def test_commands_run(page: Path, line: int, lines: list[str], workspace: Path, request: pytest.FixtureRequest) -> None:
    write_files(page)
    runner = CliRunner()
    for command in lines:
        if "s3://my-bucket" in command:  # the S3-compatible server's bucket stands for the user's
            command = command.replace("s3://my-bucket", request.getfixturevalue("s3"))
        args = shlex.split(command)
        assert args[0] == "batchproc"
        result = runner.invoke(app, args[1:])
        assert result.exit_code == 0, f"{label(page, line)}: {command}\n{result.output}"


@pytest.mark.parametrize("page", PYTHON_PAGES)
def test_python_examples_run(page: Path, workspace: Path) -> None:
    write_files(page)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for line, code in blocks(page, "python"):
        # Each block as users run it, after the ones above it on the page.
        exec(compile("\n" * (line) + code, str(page), "exec"), namespace)
    if page.name == "README.md":
        assert Path("mask.ome.zarr/zarr.json").exists()
