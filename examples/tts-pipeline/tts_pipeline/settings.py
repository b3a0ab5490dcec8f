"""Where the example keeps its state, from the environment, read when asked (never at import).

Both processes read it, the backend and the task executors under `conveyor dev`, so start them
with the same environment (only the backend opens the jobs database).

| Variable | Meaning | Default |
|---|---|---|
| TTS_DATA_DIR | folder for the jobs database and local storage | `data/` in the example |
| TTS_DATABASE | the SQLite file holding `story_jobs` (the backend's) | `$TTS_DATA_DIR/jobs.db` |
| TTS_STORAGE_DIR, TTS_S3_*, TTS_PUBLIC_BASE_URL | object storage, see `storage/` | local folder |
| OPENAI_API_KEY, TTS_PROVIDER, TTS_ESPEAK_SPEED | speech provider, see `speech/` | espeak-ng |
"""

from __future__ import annotations

import os
from pathlib import Path

EXAMPLE_ROOT = Path(__file__).resolve().parent.parent


def data_dir(env: os._Environ[str] | dict[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("TTS_DATA_DIR") or EXAMPLE_ROOT / "data")


def jobs_database(env: os._Environ[str] | dict[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("TTS_DATABASE") or data_dir(env) / "jobs.db")
