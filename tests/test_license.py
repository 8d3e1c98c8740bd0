"""The LICENSE file is the license pyproject.toml declares (issue #21)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: SPDX identifier -> the title line of that license's text.
TITLES = {"BSD-3-Clause": "BSD 3-Clause License", "MIT": "MIT License", "Apache-2.0": "Apache License"}


def test_license_file_matches_the_declared_license() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    spdx = declared["text"] if isinstance(declared, dict) else declared
    text = (ROOT / "LICENSE").read_text()
    assert text.splitlines()[0].strip() == TITLES[spdx]
    assert "batchproc developers" in text
