"""The user documentation holds together: links resolve, the README stays short, contracts match
the code, and no page reads like a lab notebook (commit hashes, session or stop numbers)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from layer_platform.cli import build_parser
from layer_platform.labels import Layer
from layer_platform_tests.docs.markdown import (
    DOCS,
    README,
    REPO_ROOT,
    anchors,
    links,
    prose_lines,
    slug,
    user_pages,
)

README_MAX_LINES = 200
#: Citations of the project's own history, which belong in git, not in user pages.
HISTORY = {
    "commit hash": re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b"),
    "stop number": re.compile(r"\bstop \d+\b", re.I),
    "session number": re.compile(r"\bsession \d+\b", re.I),
}
PAGES = user_pages()


def _relative(page: Path) -> str:
    return str(page.relative_to(REPO_ROOT))


def test_readme_is_short() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"


@pytest.mark.parametrize("page", PAGES, ids=_relative)
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in links(page.read_text()):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / unquote(path)).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved.read_text()):
            broken.append(f"{target}: no heading #{anchor}")
    assert not broken, f"{_relative(page)}: " + "; ".join(broken)


@pytest.mark.parametrize("page", PAGES, ids=_relative)
def test_no_session_history(page: Path) -> None:
    text = page.read_text()
    found = [f"{name} {m.group(0)!r}" for name, rx in HISTORY.items() for m in rx.finditer(text)]
    assert not found, f"{_relative(page)} cites history: {', '.join(found)}"


def test_every_docs_page_is_in_the_index() -> None:
    index = DOCS / "README.md"
    linked = {(index.parent / t.partition("#")[0]).resolve() for t in links(index.read_text())}
    orphans = [_relative(p) for p in sorted(DOCS.rglob("*.md")) if p != index and p not in linked]
    assert not orphans, f"not linked from docs/README.md: {orphans}"


def test_slugs_follow_github() -> None:
    assert slug("What `run` does") == "what-run-does"
    assert slug("Load: 2,000 partitions") == "load-2000-partitions"
    assert slug("`layer_saliency` columns") == "layer_saliency-columns"
    assert slug("Settings on resources (Python, not environment)") == (
        "settings-on-resources-python-not-environment"
    )
    assert anchors("# A\n```\n# not a heading\n```\n## A\n") == {"a", "a-1"}


def _label_rows(page: Path) -> dict[int, str]:
    """The ``| label | layer |`` table of a page, as {value: layer key}."""
    rows = {}
    for line in prose_lines(page.read_text()):
        match = re.fullmatch(r"\|\s*(\d+)\s*\|\s*([a-z_]+)\s*\|", line.strip())
        if match:
            rows[int(match.group(1))] = match.group(2)
    return rows


@pytest.mark.parametrize("name", ["label-map.md", "landing-zone.md"])
def test_label_map_is_the_code_contract(name: str) -> None:
    expected = {int(layer): layer.key for layer in Layer}
    assert _label_rows(DOCS / "reference" / name) == expected


def test_cli_reference_lists_every_command() -> None:
    parser = build_parser()
    commands = next(a.choices for a in parser._actions if a.dest == "command")
    reference = (DOCS / "reference" / "cli.md").read_text()
    missing = [name for name in commands if f"| `{name}" not in reference]
    assert not missing, f"docs/reference/cli.md lacks {missing}"
