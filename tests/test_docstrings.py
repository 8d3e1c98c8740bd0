"""The public functions' docstrings are numpydoc, and their examples run."""

from __future__ import annotations

import doctest
import inspect
from pathlib import Path

import pytest

import batchproc
from batchproc.ops import REGISTRY

#: The names the Python API reference shows (docs/reference/api.md), besides batchproc.ndimage.
PUBLIC = ["open", "open_image", "Image", "write", "read_store_info", "Pipeline", "BatchprocError"]


@pytest.mark.parametrize("name", PUBLIC)
def test_the_examples_run(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the examples write their files here
    finder, runner = doctest.DocTestFinder(recurse=False), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(getattr(batchproc, name), name, globs={}):
        runner.run(test)
    assert runner.failures == 0, f"{name}: {runner.failures} example(s) failed (see the output above)"


@pytest.mark.parametrize("name", [*PUBLIC, *sorted(n for n, op in REGISTRY.items() if not op.scipy)])
def test_the_docstrings_are_numpydoc(name: str) -> None:
    obj = getattr(batchproc, name)
    doc = inspect.getdoc(obj) or ""
    summary, _, rest = doc.partition("\n\n")
    assert summary and len(summary) < 300, f"{name}: the summary should be one short paragraph"
    if inspect.isfunction(obj):
        assert "Parameters\n----------" in rest and "Returns\n-------" in rest, f"{name}: no Parameters or Returns section"
        described = {n.strip() for line in rest.splitlines() if line and not line[0].isspace() for n in line.split(" : ")[0].split(",")}
        for param in inspect.signature(obj).parameters.values():
            if param.kind is not param.VAR_KEYWORD:
                assert param.name in described, f"{name}: parameter {param.name!r} not described"
    elif inspect.isclass(obj) and not issubclass(obj, Exception):
        assert "Examples\n--------" in rest, f"{name}: no Examples section"


@pytest.mark.parametrize("name", PUBLIC)
def test_the_reference_pages_get_no_rst_roles(name: str) -> None:
    """mkdocstrings renders Markdown: a ``:func:`x``` would show as typed."""
    import re

    obj = getattr(batchproc, name)
    docs = [inspect.getdoc(obj) or ""]
    if inspect.isclass(obj):
        docs += [inspect.getdoc(member) or "" for key, member in vars(obj).items() if not key.startswith("_")]
    assert not [role for doc in docs for role in re.findall(r":\w+:`[^`]+`", doc)]
