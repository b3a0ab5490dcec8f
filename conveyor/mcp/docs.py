"""Search over Conveyor's own documentation, offline: the pages under docs/ shipped in the package.

Pages are split into sections at their headings; a query is scored against each section with
BM25 (a heading match counts more than a body match). Built wheels carry the docs as
`conveyor/docs` (see setup.py); a source checkout or an editable install reads docs/ next to
the package. Nothing here does network I/O or writes files.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path

_WORD = re.compile(r"[a-z0-9_]+")
_HEADING = re.compile(r"^(#{1,4})\s+(.*?)\s*#*\s*$")
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "how",
        "i",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "the",
        "to",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "with",
        "you",
        "your",
    ]
)
HEADING_WEIGHT = 3  # a word in a section's heading or page title counts this many times


def docs_root() -> Path | None:
    """Where the docs are: inside the installed package, else docs/ of the source checkout."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "docs", package.parent / "docs"):
        if (candidate / "README.md").is_file():
            return candidate
    return None


@dataclass(frozen=True, slots=True)
class Section:
    """One section of a page: from a heading to the next heading of any level."""

    page: str  # path under docs/, e.g. "waits-and-tokens.md"
    title: str  # the page's first heading
    heading: str  # this section's heading ("" for text before the first one)
    anchor: str
    text: str

    @property
    def link(self) -> str:
        return f"docs/{self.page}#{self.anchor}" if self.anchor else f"docs/{self.page}"


@dataclass(frozen=True, slots=True)
class Hit:
    section: Section
    score: float


def words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower().replace("-", "_")) if w not in _STOP]


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.lower().replace("`", ""))
    return text.strip().replace(" ", "-")


def split_page(page: str, text: str) -> list[Section]:
    """The sections of one markdown page; headings inside fenced code blocks are not headings."""
    sections: list[Section] = []
    title, heading, fenced = "", "", False
    lines: list[str] = []

    def flush() -> None:
        body = "\n".join(lines).strip()
        if body or heading:
            sections.append(Section(page, title or heading, heading, _anchor(heading), body))

    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        match = None if fenced else _HEADING.match(line)
        if match:
            flush()
            heading, lines = match.group(2).strip(), []
            if not title:
                title = heading
        else:
            lines.append(line)
    flush()
    return [
        s if s.title else Section(s.page, title or page, s.heading, s.anchor, s.text)
        for s in sections
    ]


@dataclass(frozen=True)
class DocsIndex:
    """Every section of every page, with what BM25 needs."""

    sections: tuple[Section, ...]
    terms: tuple[Counter[str], ...]
    lengths: tuple[int, ...]
    document_frequency: Counter[str]

    @classmethod
    def build(cls, root: Path) -> DocsIndex:
        sections: list[Section] = []
        for path in sorted(root.rglob("*.md")):
            sections.extend(
                split_page(path.relative_to(root).as_posix(), path.read_text(encoding="utf-8"))
            )
        terms = []
        for section in sections:
            counts = Counter(words(section.text))
            for word in words(f"{section.title} {section.heading}"):
                counts[word] += HEADING_WEIGHT
            terms.append(counts)
        frequency: Counter[str] = Counter()
        for counts in terms:
            frequency.update(counts.keys())
        return cls(tuple(sections), tuple(terms), tuple(sum(c.values()) for c in terms), frequency)

    def search(self, query: str, limit: int = 5) -> list[Hit]:
        """The best sections for `query`, best first; empty when no word of it occurs."""
        wanted = words(query)
        if not wanted or not self.sections:
            return []
        count = len(self.sections)
        average = sum(self.lengths) / count
        k1, b = 1.4, 0.75
        hits = []
        for section, counts, length in zip(self.sections, self.terms, self.lengths, strict=True):
            score = 0.0
            for word in wanted:
                tf = counts.get(word, 0)
                if not tf:
                    continue
                idf = math.log(
                    1
                    + (count - self.document_frequency[word] + 0.5)
                    / (self.document_frequency[word] + 0.5)
                )
                score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / average))
            if score > 0:
                hits.append(Hit(section, score))
        hits.sort(key=lambda hit: (-hit.score, hit.section.page, hit.section.anchor))
        return hits[:limit]


@cache
def default_index() -> DocsIndex:
    """The index of the shipped docs, built once per process (a few milliseconds)."""
    root = docs_root()
    if root is None:
        return DocsIndex((), (), (), Counter())
    return DocsIndex.build(root)


def page_text(page: str) -> str | None:
    """The whole text of one page by its path under docs/, or None if there is no such page."""
    root = docs_root()
    if root is None or ".." in Path(page).parts:
        return None
    path = root / page
    return path.read_text(encoding="utf-8") if path.is_file() and path.suffix == ".md" else None
