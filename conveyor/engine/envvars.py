"""`engine.envvars`: environment variables and secrets of an environment.

A value is encrypted with the server's secrets key (Fernet, from the `cryptography` package)
before it is stored, and only its name and a short hash of it (`digest`) are ever shown: no
answer of the API, no page and no log carries a value. `resolved()` decrypts them for the
worker protocol alone (a lease hands them to the attempts it starts, see workers.py).

The secrets key is `CONVEYOR_SECRETS_KEY` (one Fernet key, or several separated by commas: the
first encrypts, each decrypts, to rotate keys); without it, a key is made once and kept in the
database's `settings` table. A value encrypted with a key the server no longer has cannot be
read: `SecretsKeyError` says so.

It must never log a value or put one in an error message.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import os
import re
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from conveyor.errors import ConfigError, ConveyorError, InvalidRequest, NotFound
from conveyor.models import EnvVar, EnvVarList
from conveyor.store import Store, Tx
from conveyor.store.base import Row

KEY_VARIABLE = "CONVEYOR_SECRETS_KEY"
_KEY_SETTING = "env_vars_key"
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_NAME = 256
MAX_VALUE = 32 * 1024  # bytes of UTF-8
MAX_VARIABLES = 500  # per environment
DIGEST_LENGTH = 12


class SecretsKeyError(ConveyorError):
    """The environment variables were encrypted with a secrets key this server does not have.
    Start it with the CONVEYOR_SECRETS_KEY they were set with; if that key is lost, the values
    cannot be read: set them again."""

    code = "secrets_key"
    status = 500


def check_name(name: object) -> str:
    """The name if it is a valid variable name, else InvalidRequest saying why."""
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidRequest(
            f"{str(name)[:80]!r} is not a variable name: letters, digits and _, "
            "not starting with a digit"
        )
    if len(name) > MAX_NAME:
        raise InvalidRequest(f"a variable name is at most {MAX_NAME} characters")
    if name.upper().startswith("CONVEYOR_"):
        raise InvalidRequest(f"{name}: names starting with CONVEYOR_ are reserved for Conveyor")
    return name


def check_value(name: str, value: object) -> str:
    """The value if it can be an environment variable's, else InvalidRequest (never quoting
    the value)."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{name}: a value is a string, got {type(value).__name__}")
    if "\x00" in value:
        raise InvalidRequest(f"{name}: a value cannot hold a NUL character")
    if len(value.encode()) > MAX_VALUE:
        raise InvalidRequest(f"{name}: a value is at most {MAX_VALUE // 1024} KiB")
    return value


def digest(value: str, key: bytes) -> str:
    """The short hash shown for a value: keyed by the secrets key, so that a hash seen on a page
    cannot confirm a guess at a weak value by whoever lacks the key."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:DIGEST_LENGTH]


def _digest_key(keys: str) -> bytes:
    """The key of the shown hashes, drawn from the secrets key that encrypts (the first)."""
    first = next(k.strip() for k in keys.split(",") if k.strip())
    return hashlib.sha256(b"conveyor env var digest:" + first.encode()).digest()


def _moment(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def _shown(row: Row) -> EnvVar:
    return EnvVar(
        name=row["name"],
        digest=row["digest"],
        created_at=_moment(row["created_at"]),
        updated_at=_moment(row["updated_at"]),
    )


class EnvVars:
    """Set, unset and list an environment's variables (see the module docstring)."""

    def __init__(
        self, store: Store, *, clock: Callable[[], float], secrets_key: str | None = None
    ) -> None:
        self._store = store
        self._clock = clock
        configured = secrets_key if secrets_key is not None else os.environ.get(KEY_VARIABLE)
        self._fernet: MultiFernet | None = _fernet(configured) if configured else None
        self._digest_key = _digest_key(configured) if configured else b""
        self._lock = threading.Lock()
        self._resolved: dict[str, tuple[int, dict[str, str]]] = {}  # env id: (version, values)

    def list(self, env_id: str) -> EnvVarList:
        """The environment's variables by name, with their hashes (never their values)."""
        with self._store.read() as tx:
            rows = tx.all("list_env_vars", env_id=env_id)
            version = tx.one("env_vars_version", env_id=env_id)
        counted = int(version["env_vars_version"] or 0) if version else 0
        return EnvVarList(data=[_shown(r) for r in rows], version=counted)

    def set(self, env_id: str, name: str, value: str) -> EnvVar:
        """Set one variable (made or replaced)."""
        return self.import_(env_id, {name: value})[0]

    def import_(self, env_id: str, variables: Mapping[str, str]) -> builtins.list[EnvVar]:
        """Set several variables in one transaction: all or none."""
        if not isinstance(variables, Mapping) or not variables:
            raise InvalidRequest("no variables to set")
        checked = {check_name(n): check_value(n, v) for n, v in variables.items()}
        now = self._clock()
        with self._store.transaction() as tx:
            tx.lock(env_id)
            fernet = self._key(tx)
            for name, value in checked.items():
                tx.run(
                    "upsert_env_var",
                    env_id=env_id,
                    name=name,
                    ciphertext=fernet.encrypt(value.encode()).decode(),
                    digest=digest(value, self._digest_key),
                    now=now,
                )
            count = tx.one("count_env_vars", env_id=env_id)
            if count is not None and count["n"] > MAX_VARIABLES:
                raise InvalidRequest(
                    f"an environment has at most {MAX_VARIABLES} variables; unset some first"
                )
            tx.one("bump_env_vars_version", env_id=env_id)
            rows = {r["name"]: r for r in tx.all("list_env_vars", env_id=env_id)}
        return [_shown(rows[name]) for name in checked]

    def unset(self, env_id: str, name: str) -> EnvVar:
        """Remove a variable (answered as it was, its hash only); NotFound if the environment
        has none by that name."""
        with self._store.transaction() as tx:
            tx.lock(env_id)
            row = tx.one("delete_env_var", env_id=env_id, name=name)
            if row is None:
                raise NotFound(f"no environment variable named {str(name)[:80]!r}")
            tx.one("bump_env_vars_version", env_id=env_id)
        return _shown(row)

    def resolved(self, env_id: str, version: int | None = None) -> dict[str, str]:
        """The environment's variables with their values, decrypted: for the worker protocol
        only. `version`, when the caller read it already, saves a query; the values of a
        version are decrypted once."""
        if version is None:
            with self._store.read() as tx:
                row = tx.one("env_vars_version", env_id=env_id)
            version = int(row["env_vars_version"] or 0) if row else 0
        if version == 0:
            return {}
        with self._lock:
            cached = self._resolved.get(env_id)
        if cached is not None and cached[0] == version:
            return cached[1]
        # the first use may have to store a new key: a transaction, not a read
        with self._store.transaction() if self._fernet is None else self._store.read() as tx:
            rows = tx.all("list_env_vars", env_id=env_id)
            fernet = self._key(tx) if rows else None
        values: dict[str, str] = {}
        for row in rows:
            assert fernet is not None
            try:
                values[row["name"]] = fernet.decrypt(row["ciphertext"].encode()).decode()
            except InvalidToken:
                raise SecretsKeyError() from None
        with self._lock:
            self._resolved[env_id] = (version, values)
        return values

    def seal(self, tx: Tx, value: str) -> str:
        """`value` encrypted with the secrets key, inside `tx` (which may have to store a new
        key): for the other secrets the server keeps, alerts' signing secrets and URLs."""
        return self._key(tx).encrypt(value.encode()).decode()

    def unseal(self, tx: Tx, sealed: str) -> str:
        """What `seal` encrypted; SecretsKeyError when the key that did is not this server's."""
        try:
            return self._key(tx).decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise SecretsKeyError() from None

    def _key(self, tx: Tx) -> MultiFernet:
        if self._fernet is None:
            tx.run("put_setting", name=_KEY_SETTING, value=Fernet.generate_key().decode())
            row = tx.one("get_setting", name=_KEY_SETTING)
            assert row is not None
            self._fernet = _fernet(row["value"])
            self._digest_key = _digest_key(row["value"])
        return self._fernet


def _fernet(keys: str) -> MultiFernet:
    try:
        return MultiFernet([Fernet(k.strip()) for k in keys.split(",") if k.strip()])
    except ValueError:
        raise ConfigError(
            f"{KEY_VARIABLE} must be a Fernet key (32 url-safe base64-encoded bytes; several "
            "separated by commas), made with: python -c 'from cryptography.fernet import "
            "Fernet; print(Fernet.generate_key().decode())'"
        ) from None
