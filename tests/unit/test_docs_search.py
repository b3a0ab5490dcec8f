"""search_docs serves the project's own docs, offline: every page is reachable from the docs
index, and the questions assistants ask land on the page that answers them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conveyor.mcp import docs

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_server_reads_the_docs_of_this_checkout() -> None:
    assert docs.docs_root() == DOCS


def test_every_page_is_linked_from_the_docs_index() -> None:
    index = (DOCS / "README.md").read_text()
    linked = set(re.findall(r"\]\(([^)#]+\.md)", index))
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")} - {"README.md"}
    assert pages <= linked, pages - linked


@pytest.mark.parametrize(
    ("question", "page"),
    [
        ("side effects replay step.run", "durable-execution.md"),
        ("human approval token complete", "waits-and-tokens.md"),
        ("concurrency_key tenant limit", "queues-and-concurrency.md"),
        ("retry backoff factor min_timeout_ms", "retries-and-errors.md"),
        ("install-mcp claude desktop config path", "mcp.md"),
        ("install-skills agent skills", "ai-rules-and-skills.md"),
        ("cron schedule daylight saving time zone", "schedules.md"),
        ("schedule per customer external_id deduplication_key", "schedules.md"),
        ("run metadata progress increment parent", "realtime.md"),
        ("subscribe Last-Event-ID server-sent events", "realtime.md"),
        ("stream llm tokens pipe", "realtime.md"),
        ("progress bar fastapi subscribe", "realtime.md"),
    ],
)
def test_questions_land_on_the_page_that_answers_them(question: str, page: str) -> None:
    hits = docs.default_index().search(question, 3)
    assert hits and hits[0].section.page == page, [
        (h.section.page, h.section.heading) for h in hits
    ]


def test_headings_inside_code_blocks_are_not_sections() -> None:
    sections = docs.split_page(
        "x.md", "# Title\n\ntext\n\n```bash\n# a comment\n```\n\n## Next\nmore\n"
    )
    assert [s.heading for s in sections] == ["Title", "Next"]
    assert sections[1].link == "docs/x.md#next"


def test_pages_are_read_by_name_only() -> None:
    assert docs.page_text("mcp.md")
    assert docs.page_text("../pyproject.toml") is None
    assert docs.page_text("nope.md") is None
    assert docs.default_index().search("") == []
