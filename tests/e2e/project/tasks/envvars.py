import hashlib
import logging
import os

from conveyor import logger, task


@task(id="read-env", retry={"max_attempts": 1})
def read_env(payload, ctx):
    """Reads a variable of the environment, writes it to its logs every way a task can, and
    answers with its hash; with `fail`, fails with it in the error's message."""
    value = os.environ.get(payload["name"])
    print(f"print says {value}")
    logging.getLogger("app").warning("logging says %s", value)
    logger.info(f"logger says {value}", value=value, nested=[{"v": value}])
    if payload.get("fail"):
        raise RuntimeError(f"failed with {value}")
    return {
        "present": value is not None,
        "digest": hashlib.sha256(value.encode()).hexdigest()[:12] if value is not None else None,
    }
