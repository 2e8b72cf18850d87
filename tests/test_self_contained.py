"""The repository stands alone: no test, doc or code reads or points to anything outside it.

A clone placed anywhere must pass its own suite (.ci/run also runs a part of it from a copy in an empty folder),
and every document a user or auditor needs is in the repository.
"""

import ast
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


# Folders that are not the project's own files: installed packages, generated files, caches.
SKIPPED_DIRS = {".git", ".venv", "var", "__pycache__", ".ruff_cache", ".pytest_cache", ".hypothesis", "node_modules"}


def _tracked(*suffixes: str) -> list[Path]:
    """The repository's own files with one of the suffixes (a walk, so a copy without .git is checked too)."""
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [name for name in dirs if name not in SKIPPED_DIRS]
        found += [Path(folder) / name for name in files if name.endswith(suffixes)]
    return found


def test_the_file_listing_sees_the_repository():
    names = {path.relative_to(ROOT).as_posix() for path in _tracked(".py", ".md", ".json")}
    assert {"tests/test_self_contained.py", "README.md", "tests/vectors/rfc6962.json"} <= names


# Names of places outside the repository: the sibling folder the project was once developed beside, absolute
# workspace paths, and a specification document that is not part of the repository. (Each word is written with a
# character class so this file does not match itself.)
OUTSIDE = re.compile(r"\.\./[s]hared|[s]hared/vectors|/[w]ork/|\b[S]PEC(?:\.md|\s*§|\s+section)")


def test_no_file_points_outside_the_repository():
    offenders = []
    for path in _tracked(".py", ".json", ".md", ".txt", ".toml", ".cfg", ".html", ".yml", ".yaml", "Makefile", "run"):
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}")
    assert offenders == []


def _parents_index(node: ast.AST) -> int | None:
    """N of ``Path(__file__)....parents[N]``, or None."""
    if (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "parents"
        and isinstance(node.slice, ast.Constant)
        and "__file__" in ast.unparse(node.value)
    ):
        return node.slice.value
    return None


def test_no_python_file_climbs_out_of_the_repository_from_its_own_path():
    offenders = []
    for path in _tracked(".py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        depth = len(path.relative_to(ROOT).parts) - 1  # parents[depth] of a file is the repository root
        for node in ast.walk(tree):
            index = _parents_index(node)
            if index is not None and index > depth:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: parents[{index}]")
            if isinstance(node, ast.Attribute) and node.attr == "parent":
                chain = ast.unparse(node)
                if "__file__" in chain and chain.count(".parent") - chain.count(".parents") > depth + 1:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {chain}")
    assert offenders == []


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("doc", ["README.md", "docs/audit-log.md", "docs/report.md", "tests/vectors/README.md"])
def test_relative_links_of_the_docs_point_to_files_in_the_repository(doc):
    path = ROOT / doc
    targets = [t for t in LINK.findall(path.read_text(encoding="utf-8")) if "://" not in t]
    missing = [
        t for t in targets if not (path.parent / t).resolve().is_relative_to(ROOT) or not (path.parent / t).exists()
    ]
    assert missing == []


def test_the_readme_links_the_contracts():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/audit-log.md)" in readme
    assert "(docs/report.md)" in readme
