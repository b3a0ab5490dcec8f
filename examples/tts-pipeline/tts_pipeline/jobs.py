"""The `story_jobs` table: one row per request to turn a story into audio, naming the Conveyor run
that does it, in SQLite.

A job's status, progress, audio and error are its run's: the page follows the run live from
Conveyor and GraphQL reads it there, so nothing here copies them and no task writes here. What
the table keeps is what only the backend knows: the story, the voice, and which run is the job.

One job per story at a time. `start` holds the database's write lock from the question "is the
story's last job still running?" (asked of Conveyor through `running`) to the trigger of the new
job's run (`trigger`), so two requests cannot both start one, and a job is recorded only once
its run exists. Nothing is decided by age: a run whose worker died is retried by Conveyor and
its job stays in progress until the run ends.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS story_jobs (
    id          TEXT PRIMARY KEY,
    story_id    TEXT NOT NULL,
    voice       TEXT NOT NULL,
    text_chars  INTEGER NOT NULL,
    run_id      TEXT NOT NULL,
    created_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS story_jobs_story ON story_jobs (story_id, created_at);
"""


@dataclass(frozen=True)
class Job:
    id: str
    story_id: str
    voice: str
    text_chars: int
    run_id: str
    created_at: float


@dataclass(frozen=True)
class Started:
    """What `JobStore.start` did: `job` is the new job, or the story's job still in progress
    (`already_running`)."""

    job: Job
    already_running: bool


class JobStore:
    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = self._connect()
        try:
            db.execute("PRAGMA journal_mode=WAL")  # reads go on while a job starts
            db.executescript(SCHEMA)
        finally:
            db.close()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        return db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._connect()
        try:
            # take the write lock first: two requests cannot both start a job
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    def start(
        self,
        story_id: str,
        voice: str,
        text_chars: int,
        *,
        running: Callable[[str], bool],
        trigger: Callable[[Job], str],
    ) -> Started:
        """The story's job in progress, if `running(run_id)` says its last job's run has not
        ended; otherwise a new job, recorded with the run `trigger(job)` made for it (the job's
        id is its idempotency key). If `trigger` raises, nothing is recorded."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT * FROM story_jobs WHERE story_id = ? ORDER BY created_at DESC LIMIT 1",
                (story_id,),
            ).fetchone()
            if row is not None and running(row["run_id"]):
                return Started(_job(row), already_running=True)
            job = Job(f"job_{uuid.uuid4().hex}", story_id, voice, text_chars, "", self.clock())
            job = replace(job, run_id=trigger(job))
            db.execute(
                "INSERT INTO story_jobs (id, story_id, voice, text_chars, run_id, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (job.id, job.story_id, job.voice, job.text_chars, job.run_id, job.created_at),
            )
        return Started(job, already_running=False)

    def get(self, job_id: str) -> Job | None:
        db = self._connect()
        try:
            row = db.execute("SELECT * FROM story_jobs WHERE id = ?", (job_id,)).fetchone()
        finally:
            db.close()
        return _job(row) if row is not None else None


def _job(row: sqlite3.Row) -> Job:
    return Job(**{key: row[key] for key in row.keys()})  # noqa: SIM118 (sqlite3.Row is not a mapping)
