"""The repository is self-contained: no file points to documents or paths outside it (the method
is explained in docs/method.md)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Built by concatenation so that this file does not match itself.
FORBIDDEN = ("RESEARCH" + ".md", "DESIGN" + ".md", ".." + "/shared", "/" + "work/")


def _repository_files() -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    return sorted({name for name in out.decode().split("\0") if name})


def test_no_pointer_outside_the_repository():
    hits = []
    for name in _repository_files():
        path = ROOT / name
        if not path.is_file():  # deleted in the working tree, or a submodule
            continue
        data = path.read_bytes()
        if b"\0" in data:  # binary
            continue
        for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            hits += [f"{name}:{number}: {bad}" for bad in FORBIDDEN if bad.lower() in line.lower()]
    assert not hits, "pointers outside the repository (use docs/method.md):\n" + "\n".join(hits)


def test_method_doc_covers_its_sections():
    text = (ROOT / "docs" / "method.md").read_text(encoding="utf-8")
    for heading in ("## Injection", "## Training", "## Metrics", "## Layer convention"):
        assert heading in text
