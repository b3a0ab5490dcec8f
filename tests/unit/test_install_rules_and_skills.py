"""`conveyor install-rules` and `install-skills` write valid files, stamped with the version,
keep the user's own text, change nothing the second time, update an older version in place,
and remove only what they wrote.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import strictyaml
from click.testing import CliRunner, Result
from skills_ref import validate

from conveyor.cli.main import main
from conveyor.mcp.install import rules, skills
from conveyor.version import __version__

RULE_FILES = [
    "CLAUDE.md",
    "AGENTS.md",
    ".cursor/rules/conveyor.mdc",
    ".windsurf/rules/conveyor.md",
    ".github/instructions/conveyor.instructions.md",
    ".clinerules/conveyor.md",
]
SKILLS = ["conveyor-runs", "conveyor-tasks"]


@pytest.fixture
def project(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def frontmatter(path: Path) -> dict[str, str]:
    text = path.read_text()
    assert text.startswith("---\n"), path
    header = text.split("---\n", 2)[1]
    return dict(strictyaml.load(header).data)


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_rules_go_to_every_assistant_with_valid_frontmatter(project: Path) -> None:
    run("install-rules")
    for name in RULE_FILES:
        text = (project / name).read_text()
        assert f"v{__version__}" in text and "step.run" in text and ".unwrap()" in text, name
    cursor = frontmatter(project / ".cursor/rules/conveyor.mdc")
    assert cursor["alwaysApply"] == "false" and "Conveyor" in cursor["description"]
    assert frontmatter(project / ".windsurf/rules/conveyor.md")["trigger"] == "model_decision"
    assert (
        frontmatter(project / ".github/instructions/conveyor.instructions.md")["applyTo"]
        == "**/*.py"
    )
    assert (
        len((project / ".windsurf/rules/conveyor.md").read_text()) < 6000
    )  # Windsurf's older per-file limit


def test_rules_keep_the_users_text_and_are_idempotent(project: Path) -> None:
    (project / "CLAUDE.md").write_text("# Team notes\n\nUse uv.\n")
    run("install-rules")
    text = (project / "CLAUDE.md").read_text()
    assert text.startswith("# Team notes\n\nUse uv.\n\n<!-- conveyor:rules v")
    before = snapshot(project)
    again = run("install-rules")
    assert snapshot(project) == before
    assert again.output.count("up to date") == len(RULE_FILES)


def test_an_older_version_is_updated_in_place(project: Path) -> None:
    run("install-rules", "--target", "agents")
    path = project / "AGENTS.md"
    old = path.read_text().replace(f"v{__version__}", "v0.0.1").replace("step.run", "OLD TEXT")
    path.write_text("before\n\n" + old + "\nafter\n")
    assert (
        "updated" in run("install-rules", "--client", "agents").output
    )  # --client, like install-mcp
    text = path.read_text()
    assert text.startswith("before\n\n") and text.endswith("after\n")
    assert "OLD TEXT" not in text and "v0.0.1" not in text and text.count("conveyor:rules v") == 1


def test_a_file_conveyor_did_not_write_is_kept_unless_forced(project: Path) -> None:
    mine = project / ".cursor/rules/conveyor.mdc"
    mine.parent.mkdir(parents=True)
    mine.write_text("my own rule\n")
    assert "kept" in run("install-rules", "--target", "cursor").output
    assert mine.read_text() == "my own rule\n"
    run("install-rules", "--target", "cursor", "--force")
    assert "conveyor:rules" in mine.read_text()


def test_a_single_clinerules_file_gets_a_region(project: Path) -> None:
    (project / ".clinerules").write_text("Be brief.\n")
    run("install-rules", "--target", "cline")
    text = (project / ".clinerules").read_text()
    assert text.startswith("Be brief.\n") and "conveyor:rules" in text


def test_uninstall_removes_only_what_conveyor_wrote(project: Path) -> None:
    (project / "CLAUDE.md").write_text("# Team notes\n")
    (project / ".cursor").mkdir()
    (project / ".cursor/mcp.json").write_text("{}")
    run("install-rules")
    run("install-rules", "--uninstall")
    assert (project / "CLAUDE.md").read_text() == "# Team notes\n"
    assert snapshot(project) == {"CLAUDE.md": b"# Team notes\n", ".cursor/mcp.json": b"{}"}


def test_dry_run_writes_nothing(project: Path) -> None:
    result = run("install-rules", "--dry-run")
    assert "would create: AGENTS.md" in result.output
    assert snapshot(project) == {}


def test_shipped_skills_are_valid_agent_skills(project: Path) -> None:
    assert sorted(skills.skill_texts()) == SKILLS
    run("install-skills")
    for folder in (".claude/skills", ".agents/skills"):
        for name in SKILLS:
            skill = project / folder / name
            assert validate(skill) == [], skill
            header = frontmatter(skill / "SKILL.md")
            assert header["name"] == name and 20 <= len(header["description"]) <= 1024
            assert header["metadata"]["conveyor-version"] == __version__


def test_skills_are_idempotent_and_uninstall_cleanly(project: Path) -> None:
    run("install-skills", "--target", "claude-code")
    before = snapshot(project)
    assert run("install-skills", "--target", "claude-code").output.count("up to date") == len(
        SKILLS
    )
    assert snapshot(project) == before
    run("install-skills", "--uninstall")
    assert snapshot(project) == {} and not (project / ".claude").exists()


def test_rule_text_teaches_the_common_mistakes() -> None:
    text = rules.rules_text()
    for needle in (
        "step.run",
        ".unwrap()",
        "wait.for_",
        "concurrency_key",
        "AbortTaskRunError",
        "replay",
        "@schedules.task",
        "ScheduledPayload",
        "deduplication_key",
    ):
        assert needle in text


def test_skills_teach_scheduled_tasks_and_the_schedule_tools() -> None:
    texts = skills.skill_texts()
    tasks, runs = texts["conveyor-tasks"], texts["conveyor-runs"]
    for needle in ("@schedules.task", "ScheduledPayload", "external_id", "deduplication_key"):
        assert needle in tasks, needle
    for needle in ("conveyor schedules", "list_schedules", "get_schedule", "create_schedule"):
        assert needle in runs, needle
