"""`conveyor server` as a team runs it: a real server process on a SQLite file, the admin token
it prints once, a project made with the CLI, and a `conveyor worker` on another "machine" (its
own process and folder) running the project's tasks with the prod key from `conveyor keys show`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conveyor import Client
from tests.databases import POSTGRES_URL, require_postgres
from tests.e2e.conftest import ServerProcess, WorkerProcess, free_port, make_project, wait_for

TOKEN = re.compile(r"cv_pat_[0-9a-f]{40}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(
        root=make_project(tmp_path), database_url=f"sqlite:///{tmp_path / 'data' / 'conveyor.db'}"
    )
    yield process
    process.stop()


def cli(*args: str, cwd: Path, config_home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CONFIG_HOME": str(config_home)}
    for name in ("CONVEYOR_API_URL", "CONVEYOR_SECRET_KEY", "CONVEYOR_ACCESS_TOKEN"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "conveyor.cli.main", *args],
        cwd=cwd,
        env=env,
        text=True,
        capture_output=True,
        timeout=60,
    )


def test_server_admin_project_key_and_a_remote_worker_run_a_task(
    server: ServerProcess, tmp_path: Path
) -> None:
    first = server.start()
    assert "migrations applied now: 0001, 0002, 0003, 0004, 0005" in first
    tokens = TOKEN.findall(first)
    assert len(tokens) == 1, first
    token = tokens[0]

    # an operator's laptop: log in, make a project, get its prod key
    laptop, config_home = tmp_path / "laptop", tmp_path / "laptop-config"
    laptop.mkdir()
    logged_in = cli(
        "login", "--api-url", server.api_url, "--token", token, cwd=laptop, config_home=config_home
    )
    assert logged_in.returncode == 0, logged_in.stderr
    created = cli("projects", "create", "Team Shop", "--json", cwd=laptop, config_home=config_home)
    assert created.returncode == 0, created.stderr
    keys = {
        env: cli(
            "keys",
            "show",
            "--project",
            "team-shop",
            "--env",
            env,
            cwd=laptop,
            config_home=config_home,
        ).stdout.strip()
        for env in ("prod", "dev")
    }
    assert keys["prod"].startswith("cv_prod_") and keys["dev"].startswith("cv_dev_")
    server.secret_key = keys["prod"]

    worker = WorkerProcess(server, "remote")
    try:
        worker.start()
        assert "environment prod" in worker.output()
        with Client(server.api_url, keys["prod"]) as client:
            echoed = client.trigger("echo", {"hello": "team"})
            napping = client.trigger(
                "napper", {"seconds": 6}
            )  # a durable wait: the server's tick ends it
            done = client.runs.poll(echoed.id, timeout=60)
            assert done.status == "COMPLETED" and done.output == {"hello": "team"}
            napped = client.runs.poll(napping.id, timeout=60)
            assert napped.status == "COMPLETED", napped.error
            assert napped.output["waited"] >= 6
        # the dev key of the same project sees nothing of prod
        with Client(server.api_url, keys["dev"]) as client:
            assert list(client.runs.list()) == []
            assert (
                httpx.get(
                    f"{server.api_url}/api/v1/runs/{echoed.id}",
                    headers={"Authorization": f"Bearer {keys['dev']}"},
                ).status_code
                == 404
            )
    finally:
        worker.stop()

    # a restart: no new admin token, the same keys still work
    server.stop()
    again = server.start()
    assert TOKEN.search(again) is None and "An admin exists" in again
    assert "migrations applied now" not in again
    with Client(server.api_url, keys["prod"]) as client:
        assert client.runs.retrieve(echoed.id).status == "COMPLETED"
    listed = cli("projects", "list", cwd=laptop, config_home=config_home)
    assert listed.returncode == 0 and "team-shop" in listed.stdout


def test_server_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    for args, says in (
        (["server", "--database-url", "mysql://db/x"], "unsupported database URL scheme 'mysql'"),
        (["server"], "Missing option '--database-url'"),
    ):
        result = cli(*args, cwd=tmp_path, config_home=tmp_path / "config")
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], (
            result.stderr
        )


def test_a_server_on_a_taken_port_says_so(server: ServerProcess, tmp_path: Path) -> None:
    server.start()
    result = cli(
        "server",
        "--database-url",
        str(tmp_path / "other.db"),
        "--port",
        str(server.port),
        cwd=tmp_path,
        config_home=tmp_path / "config",
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == f"error: port {server.port} on 127.0.0.1 is already in use; pass --port to use another"
    )
    assert not (tmp_path / "other.db").exists()
    wait_for(
        lambda: server.proc is not None and server.proc.poll() is None,
        what="the first server to keep going",
    )


def test_a_server_on_an_unusable_postgres_url_exits_at_once_naming_the_cause(
    tmp_path: Path,
) -> None:
    require_postgres()
    base = POSTGRES_URL.split("?", 1)[0]
    host, database = base.rsplit("/", 1)
    refused = f"postgresql://postgres@127.0.0.1:{free_port()}/{database}"
    for url, says in (
        (f"{host}/no_such_database_here", 'database "no_such_database_here" does not exist'),
        (
            f"postgresql://no_such_role@{host.split('@', 1)[1]}/{database}",
            'role "no_such_role" does not exist',
        ),
        (refused, "Connection refused"),
        (f"{base}?no_such_option=1", 'invalid URI query parameter: "no_such_option"'),
        ("postgresql://[::1/x", "IPv6 host address"),
    ):
        started = time.monotonic()
        result = cli(
            "server",
            "--database-url",
            url,
            "--port",
            str(free_port()),
            cwd=tmp_path,
            config_home=tmp_path / "config",
        )
        assert time.monotonic() - started < 5, f"{url}: took {time.monotonic() - started:.1f}s"
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1, result.stderr
        assert lines[0].startswith("error: cannot connect to PostgreSQL") and says in lines[0], (
            lines[0]
        )
