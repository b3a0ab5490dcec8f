"""Environment variables on both topologies: a run sees the environment's variables, a change
reaches the next attempt without a redeploy or a restart, and a secret a run logs, prints or
fails with is never shown: not in its logs (API, dashboard), not in any API answer, not in the
server's or the workers' own output; `conveyor dev` gives its tasks the project's .env."""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

import httpx

from tests.e2e.conftest import DevServer, free_port, make_project, wait_for


def read_env(client, payload):
    return client.runs.poll(client.trigger("read-env", payload).id, timeout=30)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:12]


def test_a_run_sees_the_variable_and_the_next_attempt_a_change(client):
    first, second = f"first-{secrets.token_hex(8)}", f"second-{secrets.token_hex(8)}"
    client.envvars.set("E2E_CHANGING", first)
    try:
        run = read_env(client, {"name": "E2E_CHANGING"})
        assert run.output == {"present": True, "digest": _digest(first)}
        client.envvars.set("E2E_CHANGING", second)  # no redeploy, no restart
        run = read_env(client, {"name": "E2E_CHANGING"})
        assert run.output == {"present": True, "digest": _digest(second)}
        client.envvars.unset("E2E_CHANGING")
        run = read_env(client, {"name": "E2E_CHANGING"})
        assert run.output == {"present": False, "digest": None}
    finally:
        if "E2E_CHANGING" in [v.name for v in client.envvars.list().data]:
            client.envvars.unset("E2E_CHANGING")


def test_a_secret_a_run_writes_is_redacted_everywhere(client, platform):
    secret = f"sk-live-{secrets.token_hex(16)}"
    answers: list[str] = []
    answers.append(client.envvars.set("E2E_SECRET", secret).model_dump_json())
    try:
        ok = read_env(client, {"name": "E2E_SECRET"})
        failed = client.trigger("read-env", {"name": "E2E_SECRET", "fail": True})
        failed_run = client.runs.poll(failed.id, timeout=30)
        assert ok.output == {"present": True, "digest": _digest(secret)}
        assert failed_run.status == "FAILED"
        for run_id in (ok.id, failed.id):
            logs = wait_for(
                lambda run_id=run_id: (
                    found if len(found := client.runs.logs(run_id)) >= 3 else None
                ),
                what="the run's three lines",
            )
            messages = [line.message for line in logs]
            assert "print says [redacted]" in messages
            assert "logging says [redacted]" in messages
            assert "logger says [redacted]" in messages
            said = next(line for line in logs if line.message == "logger says [redacted]")
            assert said.attributes == {"value": "[redacted]", "nested": [{"v": "[redacted]"}]}
            answers += [line.model_dump_json() for line in logs]
            answers.append(client.runs.retrieve(run_id).model_dump_json())
        assert "failed with [redacted]" in failed_run.error.message
        answers.append(client.envvars.list().model_dump_json())
        with httpx.Client(
            base_url=platform.api_url,
            headers={"Authorization": f"Bearer {platform.secret_key}"},
            timeout=30,
        ) as http:
            for path in (
                f"/api/v1/runs/{ok.id}",
                f"/api/v1/runs/{ok.id}/logs",
                f"/api/v1/runs/{failed.id}",
                f"/api/v1/runs/{failed.id}/logs",
                "/api/v1/runs?limit=100",
                "/api/v1/envvars",
            ):
                response = http.get(path)
                assert response.status_code == 200, (path, response.text)
                answers.append(response.text)
        if platform.kind == "dev":  # the dashboard of `conveyor dev` needs no login
            with httpx.Client(base_url=platform.api_url, timeout=30) as page:
                for run_id in (ok.id, failed.id):
                    html = page.get(f"/runs/{run_id}").text
                    assert "[redacted]" in html
                    answers.append(html)
                listed = page.get("/envvars").text
                assert 'data-variable="E2E_SECRET"' in listed
                answers.append(listed)
        answers.append(platform.output())  # the server's, the workers' and dev's own output
        for text in answers:
            assert secret not in text
    finally:
        client.envvars.unset("E2E_SECRET")


def test_conveyor_dev_gives_its_tasks_the_dotenv_file(tmp_path: Path):
    root = make_project(tmp_path)
    value = f"from-dotenv-{secrets.token_hex(8)}"
    (root / ".env").write_text(f"# local settings\nE2E_DOTENV='{value}'\nE2E_BOTH=file\n")
    dev = DevServer(root, free_port())
    try:
        dev.start()
        with dev.client() as client:
            client.envvars.set("E2E_BOTH", "from-the-api")
            client.envvars.set("E2E_API_ONLY", "api-value")
            run = read_env(client, {"name": "E2E_DOTENV"})
            assert run.output == {"present": True, "digest": _digest(value)}
            both = read_env(client, {"name": "E2E_BOTH"})
            assert both.output["digest"] == _digest("file")  # the file wins over the API
            api_only = read_env(client, {"name": "E2E_API_ONLY"})
            assert api_only.output["digest"] == _digest("api-value")
            # an edit of the file reaches the next run, without a restart
            (root / ".env").write_text(f"E2E_DOTENV='{value}-edited'\n")
            run = read_env(client, {"name": "E2E_DOTENV"})
            assert run.output == {"present": True, "digest": _digest(f"{value}-edited")}
            logs = client.runs.logs(run.id)
            assert any(line.message == "print says [redacted]" for line in logs)
        assert "Variables   2 from .env" in dev.output()
        assert value not in dev.output()
    finally:
        dev.stop()
