"""`conveyor dev` as a user meets it: a stable key, reloads, and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx

from tests.e2e.conftest import DevServer, free_port, make_project, wait_for


def test_the_dev_key_is_stable_across_restarts_and_printed(fresh_dev):
    fresh_dev.start()
    key = fresh_dev.secret_key
    assert key.startswith("cv_dev_") and key in fresh_dev.output()
    assert fresh_dev.api_url in fresh_dev.output()
    fresh_dev.stop()
    fresh_dev.start()
    assert fresh_dev.secret_key == key
    with fresh_dev.client() as client:
        assert client.runs.poll(client.trigger("echo", {}).id, timeout=15).status == "COMPLETED"


def test_editing_a_task_reloads_the_code_without_losing_a_running_run(fresh_dev):
    fresh_dev.start()
    with fresh_dev.client() as client:
        running = client.trigger("sleepy", {"seconds": 2})
        wait_for(lambda: client.runs.retrieve(running.id).status == "EXECUTING", what="EXECUTING")
        source = fresh_dev.root / "tasks" / "core.py"
        source.write_text(
            source.read_text().replace("return payload\n", "return {'v2': payload}\n", 1)
        )
        wait_for(lambda: "Reloaded tasks" in fresh_dev.output(), what="reload")
        assert client.runs.poll(running.id, timeout=20).status == "COMPLETED"
        assert client.runs.poll(client.trigger("echo", {"a": 1}).id, timeout=15).output == {
            "v2": {"a": 1}
        }


def test_a_task_file_that_fails_to_import_is_reported_and_the_old_code_keeps_serving(fresh_dev):
    fresh_dev.start()
    broken = fresh_dev.root / "tasks" / "broken.py"
    broken.write_text("import nonexistent_module_xyz\n")
    wait_for(lambda: "nonexistent_module_xyz" in fresh_dev.output(), what="the load error")
    with fresh_dev.client() as client:
        assert client.runs.poll(client.trigger("echo", {}).id, timeout=15).status == "COMPLETED"


def test_duplicate_task_ids_are_an_error_naming_both_files(fresh_dev):
    (fresh_dev.root / "tasks" / "dupe.py").write_text(
        "from conveyor import task\n@task(id='echo')\nasync def again(payload):\n    return 1\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "conveyor.cli.main", "dev", "--port", str(fresh_dev.port)],
        cwd=fresh_dev.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    fresh_dev.proc = proc  # so the fixture stops it
    deadline = time.monotonic() + 20
    seen = ""
    import os
    import select

    while time.monotonic() < deadline and "dupe.py" not in seen:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            seen += os.read(proc.stdout.fileno(), 4096).decode()
    assert "duplicate task id 'echo'" in seen
    assert "tasks/core.py" in seen and "tasks/dupe.py" in seen


def test_a_bad_config_is_one_clear_line_naming_the_key(tmp_path):
    root = make_project(tmp_path)
    (root / "pyproject.toml").write_text('[tool.conveyor]\nproject = "x"\nretrys = 3\n')
    result = subprocess.run(
        [sys.executable, "-m", "conveyor.cli.main", "dev", "--port", str(free_port())],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "retrys" in result.stderr and "pyproject.toml" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1


def test_http_errors_are_clear_4xx(dev: DevServer):
    url = dev.api_url + "/api/v1/tasks/echo/trigger"
    auth = {"Authorization": f"Bearer {dev.secret_key}"}
    malformed = httpx.post(
        url, content=b"{not json", headers={**auth, "content-type": "application/json"}
    )
    assert malformed.status_code == 400 and malformed.json()["error"]["message"]
    wrong_key = httpx.post(
        url, json={"payload": {}}, headers={"Authorization": "Bearer cv_dev_nope"}
    )
    assert wrong_key.status_code == 401 and wrong_key.json()["error"]["code"]
    unknown = httpx.post(
        dev.api_url + "/api/v1/tasks/nope/trigger", json={"payload": {}}, headers=auth
    )
    assert unknown.status_code == 404 and "nope" in unknown.json()["error"]["message"]
    bad_payload = httpx.post(
        dev.api_url + "/api/v1/tasks/video/trigger",
        json={"payload": {"video_url": 3}},
        headers=auth,
    )
    assert bad_payload.status_code == 422 and "video_url" in bad_payload.json()["error"]["message"]
    bad_option = httpx.post(url, json={"payload": {}, "options": {"priority": -1}}, headers=auth)
    assert bad_option.status_code == 422 and "priority" in bad_option.json()["error"]["message"]


def test_the_trigger_command_waits_and_prints_the_output(dev: DevServer):
    env = {"CONVEYOR_API_URL": dev.api_url, "CONVEYOR_SECRET_KEY": dev.secret_key}
    import os

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "conveyor.cli.main",
            "trigger",
            "echo",
            "--payload",
            '{"hi": 1}',
            "--wait",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, result.stderr
    assert "COMPLETED" in result.stdout and '"hi"' in result.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "conveyor.cli.main", "trigger", "echo", "--payload", "{nope"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "JSON" in bad.stderr


def test_a_large_output_is_printed_cut_with_the_way_to_get_it_whole(dev: DevServer, tmp_path):
    import os

    env = {**os.environ, "CONVEYOR_API_URL": dev.api_url, "CONVEYOR_SECRET_KEY": dev.secret_key}
    (tmp_path / "big.json").write_text(json.dumps({"blob": "x" * 2_000_000}))
    waited = subprocess.run(
        [
            sys.executable,
            "-m",
            "conveyor.cli.main",
            "trigger",
            "echo",
            "--payload",
            f"@{tmp_path / 'big.json'}",
            "--wait",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert waited.returncode == 0, waited.stderr
    assert len(waited.stdout) < 100_000
    run_id = next(word for word in waited.stdout.split() if word.startswith("run_"))
    assert f"conveyor runs show {run_id} --json` prints it whole" in " ".join(waited.stdout.split())
    whole = subprocess.run(
        [sys.executable, "-m", "conveyor.cli.main", "runs", "show", run_id, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert json.loads(whole.stdout)["output"] == {"blob": "x" * 2_000_000}
