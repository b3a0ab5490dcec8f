"""The pytest plugin's `conveyor_platform`: a user's test suite gets a real platform (API, engine,
worker and executors) on a temporary SQLite, serving the project it names, with a bound client.
Each case runs a user's test file in its own pytest process (pytester), as a user's suite would."""

from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.e2e

PROJECT = {
    "pyproject.toml": """
        [project]
        name = "shop"
        version = "0"

        [tool.conveyor]
        project = "proj_shop"
        dirs = ["tasks"]
    """,
    "tasks/orders.py": """
        from conveyor import logger, step, task, wait

        @task(id="ship-order")
        async def ship_order(payload, ctx):
            label = await step.run("label", lambda: f"label-{payload['order']}")
            await wait.for_(seconds=1)
            logger.info("shipped", order=payload["order"])
            return {"label": label}

        @task(id="approve-order")
        async def approve_order(payload, ctx):
            token = await wait.create_token(idempotency_key=f"approve-{payload['order']}")
            return (await wait.for_token(token)).output
    """,
}


@pytest.fixture
def shop(pytester: pytest.Pytester) -> pytest.Pytester:
    for path, text in PROJECT.items():
        target = pytester.path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))
    return pytester


def run_tests(pytester: pytest.Pytester, source: str) -> pytest.RunResult:
    pytester.makepyfile(test_shop=textwrap.dedent(source))
    return pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider", timeout=180)


def test_a_test_runs_the_projects_task_on_a_real_platform_through_its_client(
    shop: pytest.Pytester,
) -> None:
    result = run_tests(
        shop,
        """
        import pytest

        @pytest.mark.conveyor_project(".")
        def test_an_order_ships(conveyor_platform):
            client = conveyor_platform.client
            handle = client.tasks.trigger("ship-order", {"order": 7})
            run = client.runs.poll(handle.id, timeout=60)
            assert run.status == "COMPLETED", run.error
            assert run.output == {"label": "label-7"}
            assert [line.message for line in client.runs.logs(handle.id)] == ["shipped"]

        @pytest.mark.conveyor_project(".")
        def test_a_waiting_run_goes_on_when_the_test_completes_its_token(conveyor_platform):
            import time
            client = conveyor_platform.client
            handle = client.tasks.trigger("approve-order", {"order": 8})
            deadline = time.monotonic() + 60
            while client.runs.retrieve(handle.id).status != "WAITING":
                assert time.monotonic() < deadline
                time.sleep(0.1)
            [token] = client.waitpoints.list_tokens(status="PENDING").data
            client.waitpoints.complete_token(token.id, {"approved": True})
            run = client.runs.poll(handle.id, timeout=60)
            assert run.output == {"approved": True}
        """,
    )
    result.assert_outcomes(passed=2)


def test_each_test_gets_its_own_empty_database(shop: pytest.Pytester) -> None:
    result = run_tests(
        shop,
        """
        import pytest

        pytestmark = pytest.mark.conveyor_project(".")

        @pytest.mark.parametrize("n", [1, 2])
        def test_nothing_is_left_from_another_test(conveyor_platform, n):
            client = conveyor_platform.client
            assert client.runs.list().data == []
            client.runs.poll(client.tasks.trigger("ship-order", {"order": n}).id, timeout=60)
        """,
    )
    result.assert_outcomes(passed=2)


def test_the_project_may_come_from_the_ini_options_or_from_start(shop: pytest.Pytester) -> None:
    shop.makeini("[pytest]\nconveyor_project = .\n")
    result = run_tests(
        shop,
        """
        import asyncio

        def test_from_the_ini(conveyor_platform):
            assert conveyor_platform.client.tasks.trigger("ship-order", {"order": 1}).id

        def test_from_start_with_an_async_client(conveyor_platform):
            platform = conveyor_platform.start(".")

            async def main():
                async with platform.async_client() as client:
                    handle = await client.tasks.trigger("ship-order", {"order": 2})
                    return await client.runs.poll(handle.id, timeout=60)

            assert asyncio.run(main()).output == {"label": "label-2"}
        """,
    )
    result.assert_outcomes(passed=2)


def test_a_test_without_a_project_or_with_broken_code_fails_with_what_to_do(
    shop: pytest.Pytester,
) -> None:
    (shop.path / "broken").mkdir()
    (shop.path / "broken" / "conveyor.toml").write_text('dirs = ["tasks"]\n')
    (shop.path / "broken" / "tasks").mkdir()
    (shop.path / "broken" / "tasks" / "bad.py").write_text("import not_a_module_anywhere\n")
    result = run_tests(
        shop,
        """
        import pytest

        def test_no_project(conveyor_platform):
            conveyor_platform.client

        @pytest.mark.conveyor_project("broken")
        def test_broken(conveyor_platform):
            conveyor_platform.client
        """,
    )
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*ConfigError: conveyor_platform does not know which project*"])
    result.stdout.fnmatch_lines(["*ConfigError: the tasks of *broken do not load*bad.py*"])


def test_a_suite_that_does_not_use_the_fixture_does_not_load_the_platform(
    pytester: pytest.Pytester,
) -> None:
    result = run_tests(
        pytester,
        """
        import sys

        def test_plain():
            assert "conveyor.testing.local" not in sys.modules
            assert "conveyor.engine.facade" not in sys.modules
        """,
    )
    result.assert_outcomes(passed=1)
