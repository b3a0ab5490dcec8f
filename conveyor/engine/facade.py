"""`Engine`: the run engine over one store, made of parts named like the client's namespaces.

    engine.environments   environments and their keys          environments.py
    engine.accounts       organizations, users, projects       accounts.py
    engine.tasks          task definitions, trigger, batch     tasks.py
    engine.runs           read, list, cancel, replay runs      runs.py
    engine.queues         limits, pause and resume             queues.py
    engine.waitpoints     tokens                               waitpoints.py
    engine.workers        the worker protocol                  workers.py
    engine.durable        durable calls of runs, suspend       durable.py
    engine.deployments    versions of the task code            deployments.py
    engine.schedules      cron schedules of scheduled tasks    schedules.py
    engine.auth           public access tokens                 auth.py
    engine.events         "available" and "stop" wake-ups      events.py
    engine.observers      who is told of starts, ends, leases  observers.py
    engine.gauges         runs, queues, workers right now      gauges.py
    engine.bulk           cancel or replay runs by filter      bulk.py
    engine.usage          compute used in a period             usage.py
    engine.envvars        environment variables and secrets    envvars.py
    engine.alerts         alert channels and their deliveries  alerts.py
    engine.tick()         time-driven changes                  ticker.py

Each part is given what it needs when it is made here (the store, the clock, the event bus, the
run state machine of transitions.py, another part); this class only builds them. A route of
conveyor/server/api, a namespace of the client and a part line up one to one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from conveyor.engine.accounts import Accounts
from conveyor.engine.alerts import Alerts
from conveyor.engine.auth import Auth
from conveyor.engine.bulk import Bulk
from conveyor.engine.deployments import Deployments
from conveyor.engine.durable import Durable
from conveyor.engine.environments import Environments
from conveyor.engine.envvars import EnvVars
from conveyor.engine.events import Events
from conveyor.engine.gauges import Gauges
from conveyor.engine.observers import Observers
from conveyor.engine.queues import Queues
from conveyor.engine.runs import Runs
from conveyor.engine.schedules import Schedules
from conveyor.engine.tasks import Tasks
from conveyor.engine.ticker import Ticker
from conveyor.engine.transitions import Transitions
from conveyor.engine.usage import UsageReader
from conveyor.engine.waitpoints import Waitpoints
from conveyor.engine.workers import Workers
from conveyor.store import Store


class Engine:
    """The run engine over a store (see the module docstring). Thread-safe; each method of a
    part that changes state is one transaction."""

    def __init__(
        self, store: Store, *, clock: Callable[[], float] = time.time, worker_timeout: float = 30.0
    ) -> None:
        self.store = store
        self.clock = clock
        self.events = events = Events(store)
        self.observers = observers = Observers()
        self.gauges = Gauges(store)
        self.usage = UsageReader(store, clock=clock)
        self.envvars = EnvVars(store, clock=clock)
        self.alerts = Alerts(
            store, clock=clock, envvars=self.envvars, worker_timeout=worker_timeout
        )
        transitions = Transitions(
            store, clock=clock, observers=observers, run_ended=self.alerts.run_ended
        )
        self.environments = Environments(store, clock=clock, events=events)
        # organizations, projects, personal access tokens and environment keys
        self.accounts = Accounts(store, clock=clock, forget_keys=self.environments.forget_keys)
        self.tasks = Tasks(store, clock=clock, events=events, transitions=transitions)
        self.runs = Runs(
            store, clock=clock, events=events, transitions=transitions, tasks=self.tasks
        )
        self.queues = Queues(store, clock=clock, events=events)
        self.waitpoints = Waitpoints(store, clock=clock, events=events, transitions=transitions)
        self.durable = Durable(
            store, clock=clock, events=events, transitions=transitions, waitpoints=self.waitpoints
        )
        self.workers = Workers(
            store,
            clock=clock,
            events=events,
            transitions=transitions,
            envvars=self.envvars,
            timeout=worker_timeout,
        )
        self.deployments = Deployments(
            store, clock=clock, events=events, transitions=transitions, alerts=self.alerts
        )
        self.schedules = Schedules(
            store, clock=clock, events=events, transitions=transitions, timeout=worker_timeout
        )
        self.auth = Auth(store, clock=clock)
        self.bulk = Bulk(store, clock=clock, events=events, transitions=transitions)
        self._ticker = Ticker(
            store,
            clock=clock,
            events=events,
            transitions=transitions,
            workers=self.workers,
            schedules=self.schedules,
            bulk=self.bulk,
            alerts=self.alerts,
        )

    def tick(self) -> float | None:
        """Advance time (see ticker.py); returns when something is next due by the clock (None:
        nothing known). The platform calls this at least once a second, and at that time."""
        return self._ticker.tick()
