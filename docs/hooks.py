"""MkDocs hooks: the pages that are generated rather than written.

A page asks for generated content with a marker on a line of its own:

- ``<!-- batchproc:operations -->``: every operation of the registry
  (``batchproc.ops.REGISTRY``) with its parameters, their types, defaults, ranges
  and help (from each parameter's JSON Schema, as ``batchproc ops --schema`` prints
  it), and its scipy equivalent;
- ``<!-- batchproc:cli -->``: every command of the typer app with its usage, help,
  arguments and options (``typer.main.get_command``);
- ``<!-- batchproc:benchmark DIR[/STEM] -->``: a results file of
  ``benchmarks/results/DIR`` (``STEM.md``, the only ``*.md`` there when no stem is
  given) with the command that made it and its date (``command`` and ``date`` in
  ``STEM.json``, or the ``Command:`` and ``Date:`` lines of ``STEM.md``; a missing
  one fails the build), and its plot where there is one;
- ``<!-- batchproc:notebook PATH -->``: a notebook of the repository as markdown,
  with its stored outputs and figures (it is not executed here: the test suite
  executes it).

Hooks rather than a plugin (mkdocs-gen-files): the generators are plain functions of
the registry, the typer app and the results files, called where the marker stands,
so the hand-written text around a table stays in the page's own file; and the build
needs no plugin beyond mkdocstrings.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import nbformat
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^<!-- batchproc:(?P<kind>[a-z]+)(?: (?P<arg>\S+))? -->$", flags=re.MULTILINE)
SCIPY_DOCS = "https://docs.scipy.org/doc/scipy/reference/generated/scipy.ndimage.{}.html"
#: Where the notebook's figures and the benchmark plots go in the site.
NOTEBOOK_ASSETS = "tutorial"
BENCHMARK_ASSETS = "benchmarks"

_notebooks: dict[str, str] = {}


class _ScipyDocstrings(logging.Filter):
    """Drop griffe's warnings about the docstrings of ``batchproc.ndimage``: they are
    scipy's own text (``gaussian_laplace`` and ``gaussian_gradient_magnitude`` say
    "Extra keyword arguments ..." where numpydoc expects a parameter). Warnings about
    batchproc's own docstrings still fail the strict build."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "batchproc/ndimage.py:" not in record.getMessage()


logging.getLogger("mkdocs.plugins.griffe").addFilter(_ScipyDocstrings())


# ---------------------------------------------------------------- mkdocs events


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the notebook's figures and the benchmark plots as files of the site, and
    convert the notebooks the pages ask for (the figures must exist before any
    page's links are checked)."""
    for path in Path(config.docs_dir).rglob("*.md"):
        for match in MARKER.finditer(path.read_text(encoding="utf-8")):
            kind, arg = match["kind"], match["arg"]
            if kind == "notebook" and arg not in _notebooks:
                text, figures = notebook_markdown(ROOT / arg, NOTEBOOK_ASSETS)
                _notebooks[arg] = text
                for name, data in figures.items():
                    files.append(File.generated(config, name, content=data))
            elif kind == "benchmark":
                plot = _results(arg)[2]
                if plot is not None:
                    files.append(File.generated(config, _plot_uri(arg), abs_src_path=str(plot)))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Replace each marker with what it asks for; relative links of the generated
    text are written from the page's own folder."""
    depth = page.file.src_uri.count("/")
    up = "../" * depth

    def generated(match: re.Match[str]) -> str:
        kind, arg = match["kind"], match["arg"]
        if kind == "operations":
            return operations_markdown(up)
        if kind == "cli":
            return cli_markdown()
        if kind == "benchmark":
            return benchmark_markdown(arg, up)
        if kind == "notebook":
            return _notebooks[arg].replace("](" + NOTEBOOK_ASSETS + "/", "](" + up + NOTEBOOK_ASSETS + "/")
        raise PluginError(f"{page.file.src_uri}: unknown marker 'batchproc:{kind}'; expected operations, cli, benchmark or notebook.")

    return MARKER.sub(generated, markdown)


# ---------------------------------------------------------------- operations


KINDS = {
    "local": "Local: each output voxel depends on a bounded neighbourhood (the halo); runs block by block and fuses with its neighbours in a pipeline.",
    "pointwise": "Pointwise: voxel by voxel, no halo; fuses with its neighbours.",
    "global": "Global: passes over the whole array first (each block reduced to a small array), then block by block; splits a pipeline into stages.",
}


def operations_markdown(up: str = "../") -> str:
    """Every registry operation: summary, how it runs, scipy equivalent, parameters
    (``up``: the way from the page's folder to the site's root)."""
    from batchproc.ops import REGISTRY
    from batchproc.ops._describe import param_words

    out: list[str] = []
    index = ["| operation | kind | pipeline files | scipy equivalent |", "|---|---|---|---|"]
    for name, op in sorted(REGISTRY.items()):
        index.append(f"| [`{name}`](#{name}) | {op.kind} | {'yes' if op.in_pipeline else 'no'} | {_scipy_link(name) if op.scipy else '—'} |")
    out += ["\n".join(index), ""]
    for name, op in sorted(REGISTRY.items()):
        python = f"batchproc.ndimage.{name}" if op.scipy else f"batchproc.{name}"
        out += [f"## `{name}` {{#{name}}}", "", _cell(op.summary), ""]
        facts = [
            ("Python", f"`{python}(input, {_signature(op)})`"),
            ("scipy equivalent", _scipy_link(name) if op.scipy else "none in `scipy.ndimage`: " + _cell(_first_paragraph(op.doc) or op.summary)),
            ("runs", _cell(KINDS[op.kind])),
            ("pipeline files and `--step`", "yes" if op.in_pipeline else "no: Python only (it returns a result that is not an image)"),
            (
                "compiled kernel",
                f"yes (bit-identical to scipy's; see [Kernels]({up}concepts/kernels.md))" if op.has_compiled else "no: scipy's own, block by block",
            ),
        ]
        if op.tolerance is not None:
            facts.append(("exactness", f"bit for bit, except where scipy's own summation order shows (see [Exactness]({up}concepts/exactness.md))"))
        out += ["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in facts), ""]
        if op.params:
            out += ["| parameter | type | default | accepted values | help |", "|---|---|---|---|---|"]
            for p in op.params:
                kind, values, help_text = param_words(p)
                default = "required" if p.required else f"`{_plain(p.default)!r}`"
                out.append(f"| `{p.name}` | {_cell(kind)} | {default} | {_cell(values)} | {_cell(help_text)} |")
            out.append("")
        else:
            out += ["No parameters beyond the input.", ""]
    return "\n".join(out)


def _scipy_link(name: str) -> str:
    return f"[`scipy.ndimage.{name}`]({SCIPY_DOCS.format(name)})"


def _signature(op: Any) -> str:
    parts = []
    for p in op.params:
        text = p.name if p.required else f"{p.name}={_plain(p.default)!r}"
        parts.append(text)
    keyword = [not p.positional for p in op.params]
    if any(keyword):
        parts.insert(keyword.index(True), "*")
    return ", ".join(parts)


def _plain(value: Any) -> Any:
    """A default as a reader would write it (numpy scalars and tuples plainly)."""
    import numpy as np

    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


def _first_paragraph(doc: str) -> str:
    text = doc.strip().split("\n\n")[0] if doc else ""
    return " ".join(line.strip() for line in text.splitlines())


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def cli_markdown() -> str:
    """Every command of the typer app: usage, help, arguments, options."""
    from typer.main import get_command

    from batchproc.cli import app

    group = get_command(app)
    context_class: Callable[..., Any] = group.context_class
    root = context_class(group, info_name="batchproc")
    out = ["## `batchproc` {#batchproc}", "", _paragraphs(group.help or ""), "", "```text", "batchproc [GLOBAL OPTIONS] COMMAND [ARGS]...", "```", ""]
    out += ["Global options come before the command (`batchproc --kernels scipy run ...`).", ""]
    out += _parameters(group.params, root)
    for name in group.list_commands(root):
        command = group.get_command(root, name)
        context = context_class(command, info_name=name, parent=root)
        pieces = ["[OPTIONS]" if any(not _is_argument(p) for p in command.params) else ""]
        for p in command.params:
            if _is_argument(p):
                metavar = p.name.upper() + ("..." if p.nargs == -1 else "")
                pieces.append(metavar if p.required else f"[{metavar}]")
        out += [f"## `batchproc {name}` {{#{name}}}", "", "```text", " ".join(["batchproc", name, *filter(None, pieces)]), "```", ""]
        out += [_paragraphs(command.help or ""), ""]
        out += _parameters(command.params, context)
    return "\n".join(out)


def _is_argument(param: Any) -> bool:
    return type(param).__name__.endswith("Argument")


def _parameters(params: Iterable[Any], context: Any) -> list[str]:
    rows = ["| argument or option | help |", "|---|---|"]
    for p in params:
        record = p.get_help_record(context)
        if record is None:  # hidden
            continue
        name, help_text = record
        if _is_argument(p):
            name = p.name.upper() + (" ..." if p.nargs == -1 else "")
        rows.append(f"| `{_cell(name)}` | {_cell(help_text)} |")
    return [*rows, ""] if len(rows) > 2 else []


def _paragraphs(text: str) -> str:
    """A docstring's paragraphs, each on one line (typer's help keeps line breaks)."""
    return "\n\n".join(" ".join(part.split()) for part in text.strip().split("\n\n"))


# ---------------------------------------------------------------- benchmarks


def _results(arg: str) -> tuple[Path, dict[str, Any], Path | None]:
    """The results file ``arg`` names, its JSON record and its plot."""
    folder_name, _, stem = arg.partition("/")
    folder = ROOT / "benchmarks" / "results" / folder_name
    if not folder.is_dir():
        raise PluginError(f"benchmark marker {arg!r}: no folder {folder}.")
    if not stem:
        found = sorted(folder.glob("*.md"))
        if len(found) != 1:
            raise PluginError(f"benchmark marker {arg!r}: {folder} holds {len(found)} .md files; name one as DIR/STEM.")
        stem = found[0].stem
    table, record = folder / f"{stem}.md", folder / f"{stem}.json"
    data = json.loads(record.read_text()) if record.exists() else {}
    for line in table.read_text(encoding="utf-8").splitlines():  # "Command: `...`" and "Date: ..." lines
        key, _, value = line.partition(":")
        if key in ("Command", "Date") and key.lower() not in data:
            data[key.lower()] = value.strip().strip("`").split("`")[0].split(";")[0].strip()
    missing = [key for key in ("command", "date") if not data.get(key)]
    if missing:
        raise PluginError(f"benchmark marker {arg!r}: {record.relative_to(ROOT)} (or its .md) must record the {' and '.join(missing)} that made it.")
    plot = folder / f"{stem}.png"
    return table, data, plot if plot.exists() else None


def _plot_uri(arg: str) -> str:
    return f"{BENCHMARK_ASSETS}/{arg.replace('/', '-')}.png"


def benchmark_markdown(arg: str, up: str) -> str:
    """A results file with its command, date and source, headings moved under the page's."""
    table, data, plot = _results(arg)
    source = table.relative_to(ROOT).as_posix()
    lines = [
        f"*{data['date']}* · `{source}` · made by:",
        "",
        "```text",
        data["command"],
        "```",
        "",
    ]
    for line in table.read_text(encoding="utf-8").splitlines():
        if line.startswith(("Command:", "Date:")):
            continue
        lines.append("###" + line if line.startswith("#") else line)
    if plot is not None:
        lines += ["", f"![{arg}]({up}{_plot_uri(arg)})"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- notebooks


def notebook_markdown(path: Path, assets: str) -> tuple[str, dict[str, bytes]]:
    """A notebook as markdown with its stored outputs: code in python blocks, text
    outputs in text blocks, PNG figures as files under ``assets``."""
    import base64

    notebook = nbformat.read(path, as_version=4)
    parts: list[str] = []
    figures: dict[str, bytes] = {}
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            parts.append(cell.source)
            continue
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        parts.append(f"```python\n{cell.source}\n```")
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if output.get("output_type") == "stream":
                parts.append(_text_block(output.get("text", "")))
            elif "image/png" in data:
                name = f"{assets}/{path.stem}-{len(figures) + 1}.png"
                figures[name] = base64.b64decode(data["image/png"])
                parts.append(f"![figure {len(figures)}]({name})")
            elif "text/plain" in data:
                parts.append(_text_block(data["text/plain"]))
            elif output.get("output_type") == "error":
                raise PluginError(f"{path}: a cell's stored output is an error ({output.get('ename')}); run the notebook again.")
    return "\n\n".join(parts) + "\n", figures


def _text_block(text: str | list[str]) -> str:
    body = "".join(text) if isinstance(text, list) else text
    body = re.sub(r"\x1b\[[0-9;]*m", "", body).rstrip("\n")
    return f"```text\n{body}\n```"
