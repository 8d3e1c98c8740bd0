"""The documentation site builds in strict mode, and its generated reference pages hold
every operation of the registry and every command and option of the command line."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def build(site: Path, config: Path = ROOT / "mkdocs.yml") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "--site-dir", str(site)]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("site")
    start = time.perf_counter()
    done = build(folder)
    seconds = time.perf_counter() - start
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    print(f"docs built in {seconds:.1f} s")
    return folder


def sections(page: Path) -> dict[str, str]:
    """The HTML of each ``<h2 id=...>`` section of a built page, by id."""
    text = page.read_text(encoding="utf-8")
    parts = re.split(r'(?=<h2 id=")', text[text.index("<article") : text.index("</article>")])
    return {re.match(r'<h2 id="([^"]+)"', part)[1]: part for part in parts if part.startswith("<h2 id=")}


def code_words(fragment: str) -> set[str]:
    """The words of every ``<code>`` element of an HTML fragment."""
    words: set[str] = set()
    for code in re.findall(r"<code[^>]*>(.*?)</code>", fragment, flags=re.DOTALL):
        words.update(re.split(r"[\s,/]+", html.unescape(re.sub(r"<[^>]+>", "", code))))
    return words


def test_every_operation_and_parameter_is_in_the_reference(site: Path) -> None:
    from batchproc.ops import REGISTRY
    from batchproc.pipeline import pipeline_schema

    found = sections(site / "reference" / "operations" / "index.html")
    assert set(REGISTRY) <= set(found), sorted(set(REGISTRY) - set(found))
    for name, op in REGISTRY.items():
        words = code_words(found[name])
        missing = [p.name for p in op.params if p.name not in words]
        assert not missing, f"{name}: parameters {missing} not in its reference section"
        if op.scipy:
            assert f"scipy.ndimage.{name}" in words and f"scipy.ndimage.{name}.html" in found[name]
        assert html.escape(op.summary.split()[0]) in found[name]
    # What `batchproc ops --schema` says a pipeline file takes is there too.
    for variant in pipeline_schema()["properties"]["steps"]["items"]["oneOf"]:
        name = variant["title"]
        assert set(variant["properties"]) - {"op"} <= code_words(found[name]), name


def test_every_command_and_option_is_in_the_reference(site: Path) -> None:
    from typer.main import get_command

    from batchproc.cli import app

    group = get_command(app)
    found = sections(site / "reference" / "cli" / "index.html")
    context = group.context_class(group, info_name="batchproc")
    commands = group.list_commands(context)
    assert set(commands) >= {"run", "batch", "info", "histogram", "preview", "ops", "bench", "measure", "jobscript", "warm"}
    assert {"batchproc", *commands} <= set(found), sorted({"batchproc", *commands} - set(found))
    for name, params in [("batchproc", group.params), *((c, group.get_command(context, c).params) for c in commands)]:
        words = code_words(found[name])
        for param in params:
            if type(param).__name__.endswith("Argument"):
                names = [param.name.upper()]
            else:
                names = [*param.opts, *param.secondary_opts]
            missing = [n for n in names if n not in words]
            assert not missing, f"batchproc {name}: {missing} not in its reference section"
            if getattr(param, "help", None):
                assert html.escape(param.help.split()[0]) in found[name], (name, param.name)


def test_the_python_api_is_in_the_reference(site: Path) -> None:
    import batchproc.ndimage

    api = (site / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    for name in (
        "open",
        "open_image",
        "Image",
        "write",
        "read_store_info",
        "Pipeline",
        "sobel_magnitude",
        "equalize",
        "threshold",
        "expression",
        "where",
        "astype",
        "BatchprocError",
    ):
        assert f'id="batchproc.{name}"' in api, name
    assert "Parameters" in api and "OME-Zarr" in api  # the docstrings, not only the names
    ndimage = (site / "reference" / "ndimage" / "index.html").read_text(encoding="utf-8")
    for name in batchproc.ndimage.__all__:
        assert f'id="batchproc.ndimage.{name}"' in ndimage, name


def test_every_benchmark_result_is_dated_with_its_command(site: Path) -> None:
    page = (site / "benchmarks" / "index.html").read_text(encoding="utf-8")
    folders = sorted(p for p in RESULTS.iterdir() if p.is_dir())
    assert len(folders) >= 10
    for folder in folders:
        for table in folder.glob("*.md"):
            assert f"benchmarks/results/{folder.name}/{table.name}" in page, f"{table} is not on the benchmarks page"
            record = table.with_suffix(".json")
            if record.exists():
                data = json.loads(record.read_text())
                assert html.escape(data["command"], quote=False) in page and str(data["date"]) in page, table
    for plot in RESULTS.glob("*/*.png"):
        assert (site / "benchmarks" / f"{plot.parent.name}.png").exists() or (site / "benchmarks" / f"{plot.parent.name}-{plot.stem}.png").exists(), plot


def test_the_tutorial_is_rendered_with_its_figures(site: Path) -> None:
    import nbformat

    notebook = nbformat.read(ROOT / "notebooks" / "tutorial.ipynb", as_version=4)
    figures = sum("image/png" in o.get("data", {}) for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", []))
    page = (site / "tutorial" / "index.html").read_text(encoding="utf-8")
    shown = re.findall(r'<img[^>]+src="(tutorial-\d+\.png)"', page)
    assert figures >= 5 and len(shown) == figures
    assert all((site / "tutorial" / name).stat().st_size > 1000 for name in shown)
    assert "batchproc.ndimage.histogram" in html.unescape(re.sub(r"<[^>]+>", "", page))


def test_the_pages_load_nothing_from_the_network(site: Path) -> None:
    loads = re.compile(
        r'<(?:script|img|iframe)[^>]+src="(?:https?:)?//|<link[^>]+href="(?:https?:)?//[^"]*"[^>]*rel="(?:stylesheet|preload|preconnect)|<link[^>]+rel="(?:stylesheet|preload|preconnect)"[^>]+href="(?:https?:)?//'
    )
    pages = list(site.rglob("*.html"))
    assert len(pages) >= 20
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert not loads.search(text), f"{page.relative_to(site)} loads from the network: {loads.search(text)[0]}"
        assert "fonts.googleapis" not in text and "fonts.gstatic" not in text, page
    for sheet in site.rglob("*.css"):
        assert not re.search(r"@import\s+url\(\s*['\"]?https?:", sheet.read_text(encoding="utf-8")), sheet


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs)
    config = (ROOT / "mkdocs.yml").read_text().replace("docs_dir: docs", f"docs_dir: {docs}").replace("  - docs/hooks.py", f"  - {ROOT / 'docs' / 'hooks.py'}")
    (tmp_path / "mkdocs.yml").write_text(config)
    page = docs / "guide" / "resume.md"
    page.write_text(page.read_text() + "\nSee [the missing page](no-such-page.md).\n")
    done = build(tmp_path / "site", tmp_path / "mkdocs.yml")
    assert done.returncode != 0 and "no-such-page.md" in done.stderr, done.stderr[-2000:]
