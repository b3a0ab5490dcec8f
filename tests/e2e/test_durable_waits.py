"""Waits and tokens: they suspend the run, free its slot, and resume it on time."""

from __future__ import annotations

import json

import httpx
import pytest

from conveyor import Conflict, NotFound
from tests.e2e.conftest import wait_for


def test_a_long_wait_suspends_and_max_duration_excludes_it(client, platform):
    handle = client.trigger("napper", {"seconds": 6})  # max_duration=3 but it waits 6 s
    wait_for(lambda: client.runs.retrieve(handle.id).status == "WAITING", what="WAITING")
    run = client.runs.poll(handle.id, timeout=30)
    assert run.status == "COMPLETED", run.error
    assert run.output["waited"] >= 5.9 and run.attempts == 1
    assert platform.effects().count(f"first {handle.id}") == 1
    assert platform.effects().count(f"second {handle.id}") == 1


def test_a_short_wait_stays_in_the_process(client):
    run = client.runs.poll(client.trigger("short-nap", {}).id, timeout=20)
    assert run.status == "COMPLETED" and 0.95 <= run.output < 2.5


def token_of(client, run_id):
    def find():
        for line in client.runs.logs(run_id):
            if line.message == "token":
                return line.attributes
        return None

    return wait_for(find, what="the run to create its token")


def test_a_token_completed_through_the_api_resumes_the_run(client, platform):
    handle = client.trigger("approval", {})
    token = token_of(client, handle.id)
    wait_for(lambda: client.runs.retrieve(handle.id).status == "WAITING", what="WAITING")
    assert client.waitpoints.retrieve_token(token["id"]).status == "PENDING"
    assert any(t.id == token["id"] for t in client.waitpoints.list_tokens(status="PENDING"))
    client.waitpoints.complete_token(token["id"], {"approved": True})
    run = client.runs.poll(handle.id, timeout=20)
    assert run.output == {"ok": True, "output": {"approved": True}, "error": None}
    with pytest.raises(Conflict):
        client.waitpoints.complete_token(token["id"], {"again": True})
    assert platform.effects().count(f"after {handle.id}") == 1


def test_a_token_url_completes_it_with_a_plain_post_and_no_key(client, platform):
    handle = client.trigger("approval", {})
    token = token_of(client, handle.id)
    assert token["url"].startswith(platform.api_url)
    forged = httpx.post(token["url"][:-4] + "0000", json={"x": 1})
    assert forged.status_code == 404
    assert httpx.post(token["url"], json={"approved": "by url"}).status_code == 200
    run = client.runs.poll(handle.id, timeout=20)
    assert run.output["output"] == {"approved": "by url"}


def test_a_token_that_times_out_gives_ok_false(client):
    run = client.runs.poll(client.trigger("approval", {"timeout": 1}).id, timeout=20)
    assert run.output == {"ok": False, "output": None, "error": "timed_out"}


def test_tokens_made_outside_runs_and_their_errors(client):
    token = client.waitpoints.create_token(timeout="1h", idempotency_key="outside-1", tags=["t"])
    again = client.waitpoints.create_token(idempotency_key="outside-1")
    assert again.id == token.id and token.tags == ["t"] and token.url
    done = client.waitpoints.complete_token(token.id, [1, 2])
    assert done.status == "COMPLETED" and done.output == [1, 2]
    with pytest.raises(NotFound):
        client.waitpoints.complete_token("token_missing", {})


def test_parallel_waits_children_durations_and_steps_in_one_run(client, platform):
    handle = client.trigger("parallel", {})
    run = client.runs.poll(handle.id, timeout=40)
    assert run.status == "COMPLETED", run.error
    assert (run.output["a"], run.output["b"]) == (4, 6)
    assert platform.effects().count(f"side {handle.id}") == 1


def test_a_waiting_run_says_what_it_waits_on(client):
    handle = client.trigger("approval", {})
    token = token_of(client, handle.id)
    wait_for(lambda: client.runs.retrieve(handle.id).status == "WAITING", what="WAITING")
    run = client.runs.retrieve(handle.id)
    assert [(w.kind, w.id) for w in run.waiting_on] == [("token", token["id"])]
    client.waitpoints.complete_token(token["id"], {"ok": 1})
    assert client.runs.poll(handle.id, timeout=20).status == "COMPLETED"


def test_a_person_completes_a_token_from_the_command_line(client, platform):
    import json
    import os
    import subprocess
    import sys

    handle = client.trigger("approval", {})
    token = token_of(client, handle.id)
    env = {
        **os.environ,
        "CONVEYOR_API_URL": platform.api_url,
        "CONVEYOR_SECRET_KEY": platform.secret_key,
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "conveyor.cli.main", "tokens", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )

    listed = cli("list", "--status", "pending", "--json")
    assert listed.returncode == 0 and token["id"] in [
        t["id"] for t in json.loads(listed.stdout)["data"]
    ]
    bad = cli("complete", token["id"], "--data", "{nope")
    assert (
        bad.returncode != 0
        and "--data is not valid JSON" in bad.stderr
        and "Traceback" not in bad.stderr
    )
    done = cli("complete", token["id"], "--data", '{"approved": "from the terminal"}')
    assert done.returncode == 0, done.stderr
    assert client.runs.poll(handle.id, timeout=20).output["output"] == {
        "approved": "from the terminal"
    }
    again = cli("complete", token["id"])
    assert again.returncode == 1 and "already completed" in again.stderr


def test_a_retry_runs_failed_children_again_and_keeps_the_ones_that_completed(client, tmp_path):
    markers = [str(tmp_path / f"m{i}") if i == 1 else "" for i in range(3)]
    single = str(tmp_path / "single")
    record = tmp_path / "record.jsonl"
    handle = client.trigger(
        "retry-children", {"markers": markers, "single_marker": single, "record": str(record)}
    )
    run = client.runs.poll(handle.id, timeout=60)
    assert run.status == "COMPLETED", run.error
    assert run.attempts == 2
    seen = [json.loads(line) for line in record.read_text().splitlines()]
    # an attempt may run its function more than once (resumed after a wait): the last of each
    first = [s for s in seen if s["attempt"] == 1][-1]
    second = [s for s in seen if s["attempt"] == 2][-1]
    # the failed child (batch item 1, and the single child) ran again as new runs; the others
    # were replayed from the journal, not triggered twice
    assert second["batch"][0] == first["batch"][0] and second["batch"][2] == first["batch"][2]
    assert second["batch"][1] != first["batch"][1] and second["single"] != first["single"]
    assert run.output["outputs"] == [0, 1, 2, 9]
    assert client.runs.retrieve(first["batch"][1]).status == "FAILED"
    children = client.runs.list(task="fails-once", limit=50).data
    assert len([c for c in children if c.parent_id == handle.id]) == 6  # 4, then 2 again
