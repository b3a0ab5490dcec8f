"""The history a changelog covers: the commits since the latest tag (or a ref you name)."""

from __future__ import annotations

from pathlib import Path

import pytest
from changelog_agent.history import HistoryError, read_history
from changelog_agent.prompt import MAX_BODY_CHARS, build_prompt
from changelog_testing import commit, git


def test_commits_since_the_latest_tag_newest_first(repo: Path) -> None:
    history = read_history(repo)
    assert (
        history["range"] == "v1.0..HEAD" and history["since"] == "v1.0" and not history["truncated"]
    )
    assert [c["subject"] for c in history["commits"]] == [
        "Document payments",
        "Add card payments",
        "Fix the cart total for empty carts",
    ]
    fix = history["commits"][2]
    assert fix["body"] == "It was None." and fix["author"] == "Ada" and fix["files_changed"] == 1
    assert len(fix["sha"]) == 40 and fix["date"][:2] == "20"


def test_a_named_range_and_a_repository_without_tags(repo: Path) -> None:
    assert len(read_history(repo, since="v1.0", until="HEAD~1")["commits"]) == 2
    git(repo, "tag", "-d", "v1.0")
    history = read_history(repo)
    assert history["range"] == "HEAD" and len(history["commits"]) == 5


def test_max_commits_keeps_the_newest_and_says_so(repo: Path) -> None:
    history = read_history(repo, max_commits=2)
    assert [c["subject"] for c in history["commits"]] == ["Document payments", "Add card payments"]
    assert history["truncated"]


def test_nothing_new_is_an_empty_history(repo: Path) -> None:
    git(repo, "tag", "v1.1")
    assert read_history(repo)["commits"] == []


def test_commit_text_with_odd_characters_survives(repo: Path) -> None:
    commit(repo, "x.txt", "x", 'Support ünïcode | pipes; and "quotes"\n\nLine one\n\nLine three')
    latest = read_history(repo)["commits"][0]
    assert latest["subject"] == 'Support ünïcode | pipes; and "quotes"'
    assert latest["body"] == "Line one\n\nLine three"


def test_a_path_that_is_no_repository_or_a_bad_ref_is_a_clear_error(
    repo: Path, tmp_path: Path
) -> None:
    with pytest.raises(HistoryError, match="is not a git repository"):
        read_history(tmp_path / "nowhere")
    with pytest.raises(HistoryError, match=r"git log .* failed"):
        read_history(repo, since="v9.9")


def test_the_prompt_lists_every_commit_and_clips_long_bodies(repo: Path) -> None:
    commit(repo, "y.txt", "y", "Rewrite the checkout\n\n" + "Long explanation. " * 100)
    prompt = build_prompt(read_history(repo), "1.1.0")
    assert prompt.startswith(
        "Write the changelog section for version '1.1.0', covering the commits in v1.0..HEAD"
    )
    for subject in (
        "Rewrite the checkout",
        "Document payments",
        "Add card payments",
        "Fix the cart total",
    ):
        assert subject in prompt
    assert "    It was None." in prompt
    assert (
        "[...]" in prompt
        and prompt.count("Long explanation.") <= MAX_BODY_CHARS // len("Long explanation.") + 1
    )
