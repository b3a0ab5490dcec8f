"""The Schedules pages of the dashboard in-process, over the real engine on a clock the test moves
(2027-01-15 08:00:00 UTC): the list shows each schedule with its cron in words, time zone and
next fire time, filters and pages by keyset; a schedule's page shows its next five times in its
own zone and in UTC, its policies and its recent fires (a skipped one says why); the Activate and
Deactivate forms work on both kinds and need the session's CSRF token; an unknown or foreign id
is the 404 page; values users control are escaped."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conveyor.dashboard import DashboardSettings, mount_dashboard
from conveyor.engine import Engine
from conveyor.models import QueueSpec, RetryPolicy, ScheduledPayload, TaskDefinition, TaskSchedule
from conveyor.server import create_app
from tests.integration.conftest import ManualClock
from tests.integration.test_dashboard_pages import LOCAL, csrf_of

START = 1_800_000_000.0  # the manual clock's start: 2027-01-15 08:00:00 UTC, a Friday
MINUTE = 60.0


def scheduled(task_id: str, cron: str | None = None, **settings: Any) -> TaskDefinition:
    return TaskDefinition(
        id=task_id,
        queue=QueueSpec(name=f"task/{task_id}"),
        retry=RetryPolicy(max_attempts=1),
        payload_schema=ScheduledPayload.model_json_schema(),
        schedule=TaskSchedule(cron=cron, **settings),
    )


PLAIN = TaskDefinition(id="plain", queue=QueueSpec(name="task/plain"), retry=RetryPolicy())


@pytest.fixture
def prod(engine: Engine) -> str:
    """A prod environment whose worker declares `nightly` (03:00 in Paris) and `digest` (no cron:
    imperative schedules only); its schedules fire without a live worker."""
    env = engine.environments.ensure("proj_dash", "prod", "prod")
    tasks = [scheduled("nightly", "0 3 * * *", timezone="Europe/Paris"), scheduled("digest"), PLAIN]
    engine.workers.register(env.id, "w-1", "w-1", tasks)
    return env.id


@pytest.fixture
def dashboard(engine: Engine, prod: str) -> Iterator[TestClient]:
    """The dashboard of `prod`, as this machine sees it (no login)."""
    app = create_app(engine)
    mount_dashboard(app, engine, DashboardSettings(local_env_id=prod))
    with TestClient(
        app, base_url="http://127.0.0.1:3030", client=LOCAL, follow_redirects=False
    ) as client:
        yield client


def declared(engine: Engine, env_id: str) -> str:
    (schedule,) = engine.schedules.list(env_id, type="DECLARATIVE")
    return schedule.id


def listed(html: str) -> list[str]:
    return re.findall(r'<tr data-href="[^"]+" data-schedule="([^"]+)">', html)


def test_the_list_shows_each_schedule_with_its_cron_in_words_and_next_fire(
    dashboard: TestClient, engine: Engine, clock: ManualClock, prod: str
) -> None:
    nightly = declared(engine, prod)
    clock.advance(1)
    digest = engine.schedules.create(
        prod, task="digest", cron="0 9 * * 1", timezone="America/New_York", external_id="user-42"
    )
    response = dashboard.get("/schedules")
    assert response.status_code == 200
    page = response.text
    assert 'href="/schedules" data-go="s" class="active"' in page  # in the nav, marked current
    assert listed(page) == [digest.id, nightly]  # newest first
    row = page.split(f'data-schedule="{nightly}"', 1)[1].split("</tr>", 1)[0]
    assert '<a href="/tasks/nightly">nightly</a>' in row
    assert ">declarative<" in row and "<code>0 3 * * *</code>" in row
    assert "At 03:00 every day" in row and "Europe/Paris" in row and ">active<" in row
    assert "2027-01-16 03:00:00 CET" in row  # the next fire, on the schedule's own clock
    row = page.split(f'data-schedule="{digest.id}"', 1)[1].split("</tr>", 1)[0]
    assert ">imperative<" in row and "At 09:00 on Monday" in row and "user-42" in row
    assert "2027-01-18 09:00:00 EST" in row and "America/New_York" in row


def test_the_list_filters_by_task_type_external_id_and_state(
    dashboard: TestClient, engine: Engine, prod: str
) -> None:
    nightly = declared(engine, prod)
    a = engine.schedules.create(prod, task="digest", cron="0 9 * * *", external_id="team-a").id
    b = engine.schedules.create(prod, task="digest", cron="0 9 * * *", external_id="team-b").id
    engine.schedules.deactivate(prod, b)

    def ids(**params: str) -> set[str]:
        response = dashboard.get("/schedules", params=params)
        assert response.status_code == 200, response.text
        return set(listed(response.text))

    assert ids() == {nightly, a, b}
    assert ids(task="digest") == {a, b}
    assert ids(task="nightly") == {nightly}
    assert ids(type="declarative") == {nightly}
    assert ids(type="IMPERATIVE") == {a, b}
    assert ids(external_id="team-a") == {a}
    assert ids(state="inactive") == {b}
    assert ids(state="active", task="digest") == {a}
    nothing = dashboard.get("/schedules", params={"external_id": "team-z"}).text
    assert "No schedule matches these filters" in nothing and 'href="/schedules">Clear' in nothing
    assert dashboard.get("/schedules", params={"type": "sometimes"}).status_code == 400
    assert dashboard.get("/schedules", params={"state": "asleep"}).status_code == 400


def test_the_list_pages_older_by_keyset(dashboard: TestClient, engine: Engine, prod: str) -> None:
    made = [
        engine.schedules.create(prod, task="digest", cron="*/5 * * * *", external_id=f"c{n}").id
        for n in range(55)
    ]
    everything = sorted([*made, declared(engine, prod)], reverse=True)
    first = dashboard.get("/schedules", params={"task": "digest"}).text
    assert listed(first) == sorted(made, reverse=True)[:50]
    older = re.search(r'href="/schedules\?([^"]+)" rel="next"', first)
    assert older and "task=digest" in older.group(1)
    second = dashboard.get(f"/schedules?{older.group(1).replace('&amp;', '&')}").text
    assert listed(second) == sorted(made, reverse=True)[50:]
    assert 'rel="next"' not in second and 'href="/schedules?task=digest">Newest' in second
    unfiltered = dashboard.get("/schedules").text
    assert listed(unfiltered) == everything[:50]


def test_an_environment_without_schedules_says_how_to_make_one(
    dashboard: TestClient, engine: Engine, prod: str
) -> None:
    engine.workers.set_tasks(prod, [scheduled("digest"), PLAIN])  # no cron left in the code
    page = dashboard.get("/schedules").text
    assert listed(page) == [] and "No schedules yet" in page
    assert '@schedules.task(id="nightly", cron="0 3 * * *"' in page
    assert "conveyor schedules create --task TASK --cron" in page


def test_a_schedule_page_shows_its_times_in_both_zones_its_policies_and_recent_fires(
    dashboard: TestClient, engine: Engine, clock: ManualClock, prod: str
) -> None:
    s = engine.schedules.create(
        prod,
        task="digest",
        cron="*/5 * * * *",
        timezone="Asia/Kolkata",
        external_id="user-7",
        deduplication_key="user-7-digest",
        overlap="skip",
        catch_up="none",
    )
    clock.now = START + 5 * MINUTE
    engine.tick()  # 08:05 UTC: a run
    (run,), _ = engine.runs.list(prod, task_id="digest")
    clock.now = START + 10 * MINUTE
    engine.tick()  # 08:10: skipped, the 08:05 run is still queued
    response = dashboard.get(f"/schedules/{s.id}")
    assert response.status_code == 200
    page = response.text
    assert '<code id="schedule-cron">*/5 * * * *</code>' in page
    assert "Every fifth minute of every hour" in page
    assert '<dd id="schedule-timezone">Asia/Kolkata</dd>' in page
    assert "user-7-digest" in page and "user-7" in page
    assert "skip <span" in page and "no run while the previous run" in page
    assert "none <span" in page and "makes no run" in page
    upcoming = re.findall(
        r'<tr data-upcoming="[^"]+"><td data-local>([^<]+)</td><td class="muted" data-utc>([^<]+)<',
        page,
    )
    assert upcoming == [  # 08:15 UTC onwards; Kolkata is UTC+05:30
        (f"2027-01-15 {local} IST", f"2027-01-15 {utc} UTC")
        for local, utc in [
            ("13:45:00", "08:15:00"),
            ("13:50:00", "08:20:00"),
            ("13:55:00", "08:25:00"),
            ("14:00:00", "08:30:00"),
            ("14:05:00", "08:35:00"),
        ]
    ]
    fires = page.split('id="fires"', 1)[1]
    skipped = fires.split('data-fire="skipped"', 1)[1].split("</tr>", 1)[0]
    assert "2027-01-15 13:40:00 IST" in skipped and f"the previous run {run.id}" in skipped
    assert "is still QUEUED" in skipped
    triggered = fires.split('data-fire="triggered"', 1)[1].split("</tr>", 1)[0]
    assert "2027-01-15 13:35:00 IST" in triggered and 'title="2027-01-15 08:05:00 UTC"' in triggered
    assert f'<a class="mono" href="/runs/{run.id}">{run.id}</a>' in triggered
    assert ">QUEUED</span>" in triggered
    assert fires.index('data-fire="skipped"') < fires.index('data-fire="triggered"')  # newest first
    assert 'action="/schedules/' + s.id + '/deactivate"' in page
    assert "Managed by the code" not in page


def test_a_declarative_schedule_page_says_the_code_manages_it(
    dashboard: TestClient, engine: Engine, prod: str
) -> None:
    page = dashboard.get(f"/schedules/{declared(engine, prod)}").text
    assert "Managed by the code" in page and '@schedules.task(id="nightly", cron=...)' in page
    assert "At 03:00 every day" in page and "No fires yet" in page
    assert "2027-01-16 03:00:00 CET" in page and "2027-01-16 02:00:00 UTC" in page
    assert "2027-01-20 03:00:00 CET" in page and "2027-01-20 02:00:00 UTC" in page
    assert '<a href="/tasks/nightly">nightly</a>' in page


@pytest.mark.parametrize("kind", ["declarative", "imperative"])
def test_deactivate_and_activate_through_the_forms(
    dashboard: TestClient, engine: Engine, prod: str, kind: str
) -> None:
    if kind == "declarative":
        schedule_id = declared(engine, prod)
    else:
        schedule_id = engine.schedules.create(prod, task="digest", cron="0 9 * * *").id
    url = f"/schedules/{schedule_id}"
    csrf = csrf_of(dashboard.get(url).text)
    assert dashboard.post(f"{url}/deactivate").status_code == 403
    assert dashboard.post(f"{url}/deactivate", data={"csrf": "forged"}).status_code == 403
    elsewhere = dashboard.post(
        f"{url}/deactivate", data={"csrf": csrf}, headers={"Origin": "https://evil.example"}
    )
    assert elsewhere.status_code == 403
    assert engine.schedules.retrieve(prod, schedule_id).active

    done = dashboard.post(f"{url}/deactivate", data={"csrf": csrf})
    assert done.status_code == 303 and done.headers["location"] == url
    assert not engine.schedules.retrieve(prod, schedule_id).active
    page = dashboard.get(url).text
    assert f"Schedule {schedule_id} deactivated" in page  # the flash
    assert ("stays inactive across reloads" in page) == (kind == "declarative")
    assert '<span class="badge big s-muted" id="schedule-state">inactive</span>' in page
    assert "None: the schedule is inactive" in page and f'action="{url}/activate"' in page
    assert re.search(
        rf'data-schedule="{schedule_id}">.*?>inactive<', dashboard.get("/schedules").text, re.S
    )

    again = dashboard.post(f"{url}/activate", data={"csrf": csrf})
    assert again.status_code == 303
    after = engine.schedules.retrieve(prod, schedule_id)
    assert after.active and after.next_fire_at is not None
    page = dashboard.get(url).text
    assert f"Schedule {schedule_id} activated: next fire at" in page
    assert f'action="{url}/deactivate"' in page and len(re.findall("data-upcoming=", page)) == 5


def test_an_unknown_or_foreign_schedule_is_the_404_page(
    dashboard: TestClient, engine: Engine, prod: str
) -> None:
    staging = engine.environments.ensure("proj_dash", "staging", "staging")
    engine.workers.register(staging.id, "w-2", "w-2", [scheduled("digest")])
    theirs = engine.schedules.create(staging.id, task="digest", cron="0 9 * * *").id
    csrf = csrf_of(dashboard.get("/schedules").text)
    assert theirs not in dashboard.get("/schedules").text
    for schedule_id in ("sched_nope", theirs, "%3Cb%3Ebold%3C%2Fb%3E", "x" * 2000):
        missing = dashboard.get(f"/schedules/{schedule_id}")
        assert missing.status_code == 404, schedule_id
        assert "text/html" in missing.headers["content-type"] and "Not found" in missing.text
        assert "<b>bold" not in missing.text
        for action in ("activate", "deactivate"):
            refused = dashboard.post(f"/schedules/{schedule_id}/{action}", data={"csrf": csrf})
            assert refused.status_code == 404, (schedule_id, action)
    assert engine.schedules.retrieve(staging.id, theirs).active


def test_values_users_control_are_escaped(dashboard: TestClient, engine: Engine, prod: str) -> None:
    hostile = '<script>alert("x")</script>'
    s = engine.schedules.create(
        prod, task="digest", cron="0 9 * * *", external_id=hostile, deduplication_key=hostile
    )
    escaped = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"
    for response in (
        dashboard.get("/schedules"),
        dashboard.get("/schedules", params={"external_id": hostile}),
        dashboard.get(f"/schedules/{s.id}"),
    ):
        assert response.status_code == 200
        assert "<script>alert" not in response.text and escaped in response.text
    assert s.id in dashboard.get("/schedules", params={"external_id": hostile}).text
