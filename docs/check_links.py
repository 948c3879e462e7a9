"""Checks that every relative link in README.md and docs/**/*.md resolves (``make docs-check``).

    python docs/check_links.py      # one line per broken link; exit 1 if there is any

A link is ``[text](target)``, ``![alt](target)`` or ``<img src="target">`` outside code blocks.
Web addresses are not fetched. A relative target must be an existing file or folder, and a
``#fragment`` must match a heading of the Markdown file it points into (GitHub's anchors:
lower case, punctuation dropped, spaces to hyphens). Standard library only.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(
    r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|<img[^>]*\bsrc=\"([^\"]+)\""
)
FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"`[^`]*`")


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def prose_lines(path: Path, keep_code: bool = False) -> list[tuple[int, str]]:
    """``(line number, text)`` outside fenced code blocks, inline code removed unless
    ``keep_code`` (headings may hold it)."""
    out, fenced = [], False
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            out.append((n, line if keep_code else INLINE_CODE.sub("", line)))
    return out


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown file (repeats get ``-1``, ``-2``, ...)."""
    found, counts = set(), {}
    for _, line in prose_lines(path, keep_code=True):
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m[1].lower()).replace(" ", "-")
        k = counts.get(slug, 0)
        counts[slug] = k + 1
        found.add(slug if k == 0 else f"{slug}-{k}")
    return found


def check(path: Path) -> list[str]:
    problems = []
    for n, line in prose_lines(path):
        for m in LINK.finditer(line):
            target = m[1] or m[2]
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
                continue
            file_part, _, fragment = target.partition("#")
            dest = (path.parent / unquote(file_part)).resolve() if file_part else path
            where = f"{path.relative_to(ROOT)}:{n}: {target}"
            if not dest.exists():
                problems.append(f"{where}: no such file")
            elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
                problems.append(f"{where}: no heading #{fragment} in {dest.relative_to(ROOT)}")
    return problems


def main() -> int:
    files = markdown_files()
    problems = [p for f in files for p in check(f)]
    print("\n".join(problems) or f"every relative link resolves ({len(files)} files)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
