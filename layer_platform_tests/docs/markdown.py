"""Read the user documentation (README.md and docs/**/*.md) the way GitHub renders it.

Shared by the link and history checks here and by the tests that run the documented SQL and
commands against a real warehouse (``saliency/test_materialization.py``), so a page that moves
keeps being executed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"
#: The how-to page holding the SQL cookbook and the warehouse commands.
QUERY_HOWTO = DOCS / "how-to" / "query-the-warehouse.md"

_FENCE = re.compile(r"^\s*```")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*([^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_COMMENT = re.compile(r"<!--.*?-->", re.S)


@dataclass(frozen=True)
class Block:
    """One fenced code block: its info string (``sql``, ``bash``, …) and its text."""

    info: str
    text: str


def user_pages() -> list[Path]:
    """README.md and every Markdown page under docs/, sorted."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def prose_lines(text: str) -> Iterator[str]:
    """The lines outside fenced code blocks (HTML comments removed)."""
    inside = False
    for line in _COMMENT.sub("", text).splitlines():
        if _FENCE.match(line):
            inside = not inside
            continue
        if not inside:
            yield line


def code_blocks(text: str) -> list[Block]:
    """Every fenced code block, indented ones (inside list items) dedented."""
    blocks: list[Block] = []
    info, indent, lines = None, 0, []
    for line in text.splitlines():
        if _FENCE.match(line):
            if info is None:
                indent = len(line) - len(line.lstrip())
                info, lines = line.strip()[3:].strip(), []
            else:
                blocks.append(Block(info, "\n".join(lines) + "\n"))
                info = None
        elif info is not None:
            lines.append(line[indent:] if line[:indent].isspace() else line)
    return blocks


def links(text: str) -> list[str]:
    """Link and image targets in the prose (inline code and code blocks excluded)."""
    found: list[str] = []
    for line in prose_lines(text):
        found += _LINK.findall(_INLINE_CODE.sub("", line))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading anchor of a page; repeated headings get GitHub's ``-1``, ``-2`` suffixes."""
    seen: Counter[str] = Counter()
    result = set()
    for line in prose_lines(text):
        match = _HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        result.add(base if not seen[base] else f"{base}-{seen[base]}")
        seen[base] += 1
    return result


def sql_blocks(page: Path) -> list[str]:
    """The ```sql blocks of a page, in order."""
    return [b.text for b in code_blocks(page.read_text()) if b.info == "sql"]


def platform_commands(page: Path) -> list[str]:
    """The read-only ``layer-platform`` lines of a page's ```bash blocks, as a shell runs them.

    Lines that read a file the reader has to write first (``< my_query.sql``) or pipe into a tool
    this machine may lack (``| jq``) are left out.
    """
    commands = []
    for block in code_blocks(page.read_text()):
        if block.info != "bash":
            continue
        for line in block.text.splitlines():
            line = line.split("  #")[0].strip()
            if re.match(r"layer-platform (sql|snapshot|status|ranking)\b", line) and not re.search(
                r" < |\| *jq\b", line
            ):
                commands.append(line)
    return commands
