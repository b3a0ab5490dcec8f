"""The deployments API through `client.deployments` (sync and async): deploy, list, retrieve,
promote back, fetch a bundle; and the refusals a deploy to the wrong place gets."""

from __future__ import annotations

import asyncio
import hashlib
import re

import pytest

from conveyor import AsyncClient, Client
from conveyor.errors import InvalidRequest, NotFound
from conveyor.models import QueueSpec, RetryPolicy, TaskDefinition
from tests.bundles import bundle_of, small_bundle

PROD_KEY = "cv_prod_" + "p" * 32
BUNDLE = small_bundle()
LOCK = hashlib.sha256(b"pydantic==2.0\n").hexdigest()
TASKS = [TaskDefinition(id="hello", queue=QueueSpec(name="hello"), retry=RetryPolicy())]


@pytest.fixture
def prod_key(backend) -> str:
    env = backend.engine.environments.ensure("proj_test", "prod", "prod")
    backend.engine.environments.add_api_key(env.id, PROD_KEY)
    return PROD_KEY


def test_deploy_list_promote_back_and_fetch_a_bundle(live_server, prod_key):
    with Client(live_server, prod_key) as client:
        with pytest.raises(NotFound, match="nothing is deployed"):
            client.deployments.current()
        first = client.deployments.create(
            environment="prod",
            tasks=TASKS,
            bundle=BUNDLE,
            lock_sha256=LOCK,
            details={"git": {"commit": "abc"}},
        )
        second = client.deployments.create(
            environment="prod", tasks=TASKS, bundle=small_bundle("second"), lock_sha256=LOCK
        )
        assert first.version.endswith(".1") and second.version.endswith(".2") and second.is_current
        assert (
            first.environment == "prod"
            and first.tasks == ["hello"]
            and first.details == {"git": {"commit": "abc"}}
        )
        page = client.deployments.list(limit=1)
        assert [d.version for d in page] == [second.version] and page.has_more
        assert [d.version for d in client.deployments.list(cursor=page.next_cursor)] == [
            first.version
        ]
        assert client.deployments.promote(first.version).is_current
        assert client.deployments.current().version == first.version
        assert not client.deployments.retrieve(second.version).is_current
        meta, raw = client.deployments.bundle(first.version)
        assert raw == BUNDLE and meta.lock_sha256 == LOCK
        with pytest.raises(NotFound):
            client.deployments.promote("19990101.1")


def test_the_async_client_has_the_same_calls(live_server, prod_key):
    async def main() -> tuple[str, str, int]:
        async with AsyncClient(live_server, prod_key) as client:
            made = await client.deployments.create(
                environment="prod", tasks=TASKS, bundle=BUNDLE, lock_sha256=LOCK, promote=False
            )
            promoted = await client.deployments.promote(made.version)
            page = await client.deployments.list()
            return (
                made.version,
                (await client.deployments.current()).version,
                len(page) + int(promoted.is_current),
            )

    made, current, count = asyncio.run(main())
    assert made == current and count == 2


def test_a_deploy_with_the_key_of_another_environment_is_refused(live_server, prod_key, backend):
    with (
        Client(live_server, prod_key) as client,
        pytest.raises(InvalidRequest, match="prod environment, not staging"),
    ):
        client.deployments.create(
            environment="staging", tasks=TASKS, bundle=BUNDLE, lock_sha256=LOCK
        )
    with Client(live_server, backend.key) as client, pytest.raises(InvalidRequest):  # the dev key
        client.deployments.create(environment="prod", tasks=TASKS, bundle=BUNDLE, lock_sha256=LOCK)
    with pytest.raises(InvalidRequest, match="deploy to one of"):
        Client(live_server, prod_key).deployments.create(
            environment="dev", tasks=TASKS, bundle=BUNDLE, lock_sha256=LOCK
        )


def test_a_trigger_for_an_undeployed_task_is_visible_as_pending_version(live_server, prod_key):
    with Client(live_server, prod_key) as client:
        handle = client.trigger("not-yet", {"a": 1})
        assert client.runs.retrieve(handle.id).status == "PENDING_VERSION"
        assert [r.id for r in client.runs.list(status="PENDING_VERSION")] == [handle.id]
        client.deployments.create(
            environment="prod",
            tasks=[
                *TASKS,
                TaskDefinition(id="not-yet", queue=QueueSpec(name="not-yet"), retry=RetryPolicy()),
            ],
            bundle=BUNDLE,
            lock_sha256=LOCK,
        )
        assert client.runs.retrieve(handle.id).status == "QUEUED"


@pytest.mark.parametrize(
    ("bundle", "named"),
    [
        (bundle_of({"../../x.py": b"print(1)"}), "'../../x.py'"),
        (bundle_of({"tasks/../../escape.py": b""}), "'tasks/../../escape.py'"),
        (bundle_of({"/etc/cron.d/x": b"* * * * * root sh"}), "'/etc/cron.d/x'"),
        (
            bundle_of({"tasks/a.py": b""}, links={"tasks/b.py": "/etc/passwd"}),
            "'tasks/b.py' is a link",
        ),
        (
            bundle_of({"tasks/a.py": b""}, hard_links={"tasks/c.py": "tasks/a.py"}),
            "'tasks/c.py' is a link",
        ),
        (b"\x1f\x8b\x08 not a tar.gz at all", "not a tar.gz"),
    ],
    ids=["dot-dot", "dot-dot-inside", "absolute", "symlink", "hard-link", "not-a-tarball"],
)
def test_a_bundle_a_worker_could_not_unpack_safely_is_refused_naming_its_member(
    live_server, prod_key, bundle, named
):
    with Client(live_server, prod_key) as client:
        before = len(client.deployments.list())
        with pytest.raises(InvalidRequest, match=re.escape(named)):
            client.deployments.create(
                environment="prod", tasks=TASKS, bundle=bundle, lock_sha256=LOCK
            )
        assert (
            len(client.deployments.list()) == before
        )  # no version was made, nothing became current


def test_a_bundle_that_unpacks_past_the_limit_is_refused(live_server, prod_key):
    bomb = bundle_of(
        {f"tasks/zeros{i}.bin": bytes(64 * 1024 * 1024) for i in range(5)}
    )  # 320 MB of zeros
    assert len(bomb) < 1024 * 1024
    with (
        Client(live_server, prod_key) as client,
        pytest.raises(InvalidRequest, match="unpacks to more than 256 MB"),
    ):
        client.deployments.create(environment="prod", tasks=TASKS, bundle=bomb, lock_sha256=LOCK)
