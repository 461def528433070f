"""docs/reliability.md cannot drift from the suite: every test it names (``tests/FILE.py::TEST``) is defined, and
every test of the files dedicated to reliability is named there."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "reliability.md"
#: Files whose every test must have its row on the page.
DEDICATED = ("tests/test_reliability.py", "tests/test_reliability_gaps.py")
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(\w+)(?:\[[^\]`]*\])?`")


def referenced() -> set[tuple[str, str]]:
    return set(REFERENCE.findall(PAGE.read_text()))


def defined_tests(path: str) -> set[str]:
    """The test functions pytest collects from ``path``: module-level ``test_*`` functions and the ``test_*``
    methods of ``Test*`` classes (by their own name)."""
    tree = ast.parse((ROOT / path).read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_"):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            names |= {item.name for item in node.body
                      if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name.startswith("test_")}
    return names


def test_every_test_the_page_names_exists():
    references = referenced()
    assert len(references) >= 50, f"only {len(references)} references parsed: has the page's format changed?"
    missing = []
    for path, name in sorted(references):
        if not (ROOT / path).is_file():
            missing.append(f"{path} (no such file)")
        elif name not in defined_tests(path):
            missing.append(f"{path}::{name}")
    assert not missing, "docs/reliability.md names tests that do not exist: " + ", ".join(missing)


def test_every_dedicated_reliability_test_has_its_row():
    named = {(path, name) for path, name in referenced()}
    absent = [f"{path}::{name}" for path in DEDICATED for name in sorted(defined_tests(path))
              if (path, name) not in named]
    assert not absent, "tests missing from docs/reliability.md: " + ", ".join(absent)


def test_every_row_names_a_test():
    """Each row of the page's tables (a line starting with ``|`` that is neither a header nor a rule) cites one."""
    rows = [line for line in PAGE.read_text().splitlines()
            if line.startswith("| ") and not line.startswith("| case ") and not set(line) <= set("|- ")]
    assert rows
    uncited = [row[:80] for row in rows if not REFERENCE.search(row.rsplit("|", 2)[-2])]
    assert not uncited, uncited
