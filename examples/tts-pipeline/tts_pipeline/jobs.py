"""The `generation_jobs` table: one row per request to turn a story into audio, in SQLite.

The backend creates a row (RUNNING) and the orchestrator task ends it (SUCCEEDED or FAILED);
clients poll it through the GraphQL API. A job ends once: `succeed` and `fail` only change a
RUNNING row. Stale jobs: a story may have one RUNNING job at a time; one that has been running for
`STALE_AFTER` seconds is taken as lost (its worker died with it, say), marked FAILED, and a new
job starts.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

STALE_AFTER = 10 * 60

SCHEMA = """
CREATE TABLE IF NOT EXISTS generation_jobs (
    id          TEXT PRIMARY KEY,
    story_id    TEXT NOT NULL,
    voice       TEXT NOT NULL,
    text_chars  INTEGER NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('RUNNING', 'SUCCEEDED', 'FAILED')),
    run_id      TEXT,
    audio_url   TEXT,
    audio_key   TEXT,
    audio_bytes INTEGER,
    error       TEXT,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    completed_at REAL
);
CREATE INDEX IF NOT EXISTS generation_jobs_story_status ON generation_jobs (story_id, status);
"""


@dataclass(frozen=True)
class Job:
    id: str
    story_id: str
    voice: str
    text_chars: int
    status: str
    run_id: str | None
    audio_url: str | None
    audio_key: str | None
    audio_bytes: int | None
    error: str | None
    created_at: float
    updated_at: float
    completed_at: float | None


@dataclass(frozen=True)
class Started:
    """What `JobStore.start` did: `job` is the new job, or the story's job already in progress
    (`already_running`); `stale` is the job it marked FAILED first, if any."""

    job: Job
    already_running: bool
    stale: Job | None = None


class JobStore:
    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = self._connect()
        try:
            db.execute("PRAGMA journal_mode=WAL")  # the backend reads while the tasks write
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

    def start(self, story_id: str, voice: str, text_chars: int) -> Started:
        """Create a RUNNING job for the story, unless one younger than STALE_AFTER is running."""
        now = self.clock()
        with self._transaction() as db:
            row = db.execute(
                "SELECT * FROM generation_jobs WHERE story_id = ? AND status = 'RUNNING' "
                "ORDER BY created_at DESC LIMIT 1",
                (story_id,),
            ).fetchone()
            stale = None
            if row is not None:
                running = _job(row)
                if now - running.created_at < STALE_AFTER:
                    return Started(running, already_running=True)
                db.execute(
                    "UPDATE generation_jobs SET status = 'FAILED', error = ?, updated_at = ?, "
                    "completed_at = ? WHERE id = ?",
                    (
                        f"stale: still RUNNING after {STALE_AFTER // 60} minutes; "
                        "a new job replaced it",
                        now,
                        now,
                        running.id,
                    ),
                )
                stale = _job(
                    db.execute(
                        "SELECT * FROM generation_jobs WHERE id = ?", (running.id,)
                    ).fetchone()
                )
            job_id = f"job_{uuid.uuid4().hex}"
            db.execute(
                "INSERT INTO generation_jobs (id, story_id, voice, text_chars, status, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, 'RUNNING', ?, ?)",
                (job_id, story_id, voice, text_chars, now, now),
            )
            created = _job(
                db.execute("SELECT * FROM generation_jobs WHERE id = ?", (job_id,)).fetchone()
            )
        return Started(created, already_running=False, stale=stale)

    def attach_run(self, job_id: str, run_id: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE generation_jobs SET run_id = ?, updated_at = ? WHERE id = ?",
                (run_id, self.clock(), job_id),
            )

    def succeed(self, job_id: str, *, audio_url: str, audio_key: str, audio_bytes: int) -> bool:
        """Mark a RUNNING job SUCCEEDED; False if it had already ended."""
        now = self.clock()
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE generation_jobs SET status = 'SUCCEEDED', audio_url = ?, audio_key = ?, "
                "audio_bytes = ?, updated_at = ?, completed_at = ? "
                "WHERE id = ? AND status = 'RUNNING'",
                (audio_url, audio_key, audio_bytes, now, now, job_id),
            )
            return cursor.rowcount == 1

    def fail(self, job_id: str, error: str) -> bool:
        """Mark a RUNNING job FAILED with the error; False if it had already ended."""
        now = self.clock()
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE generation_jobs SET status = 'FAILED', error = ?, updated_at = ?, "
                "completed_at = ? WHERE id = ? AND status = 'RUNNING'",
                (error, now, now, job_id),
            )
            return cursor.rowcount == 1

    def get(self, job_id: str) -> Job | None:
        db = self._connect()
        try:
            row = db.execute("SELECT * FROM generation_jobs WHERE id = ?", (job_id,)).fetchone()
        finally:
            db.close()
        return _job(row) if row is not None else None


def _job(row: sqlite3.Row) -> Job:
    return Job(**{key: row[key] for key in row.keys()})  # noqa: SIM118 (sqlite3.Row is not a mapping)
