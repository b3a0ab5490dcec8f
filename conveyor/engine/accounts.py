"""Accounts: organizations, users and their personal access tokens, projects, and the secret
key of each project environment.

    organization ─┬─ members: users ── personal access tokens (cv_pat_...): act on the projects
                  └─ projects ── environments dev, staging, prod, preview-<branch>
                                   └─ secret key (cv_dev_ / cv_stg_ / cv_prod_ / cv_prev_...)

No secret is ever stored or logged. A personal access token is random and kept as its sha256:
it is shown once, when made. An environment key is derived from a platform secret (in the
`settings` table) and the environment's key version, and kept as its sha256 in `api_keys`; so
it can be shown again, and rotating it (raising the version) revokes the old one. Which runs
a key reaches is the Engine's business; this module never touches run state.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from conveyor.errors import Conflict, InvalidRequest, NotFound
from conveyor.ids import new_id
from conveyor.models import (
    EnvironmentKey,
    EnvironmentKind,
    Organization,
    Project,
    ProjectEnvironment,
    User,
)
from conveyor.store import Row, Store, Tx

KEY_PREFIXES: dict[str, str] = {
    "dev": "cv_dev_",
    "staging": "cv_stg_",
    "prod": "cv_prod_",
    "preview": "cv_prev_",
}
TOKEN_PREFIX = "cv_pat_"
STANDING_ENVIRONMENTS = (
    "dev",
    "staging",
    "prod",
)  # every project has these; previews come per branch
PREVIEW_PREFIX = "preview-"
DEFAULT_ORGANIZATION = "default"
ADMIN_NAME = "admin"
_KEY_SECRET_SETTING = "environment_key_secret"
_ORDER = {"dev": 0, "staging": 1, "prod": 2, "preview": 3}
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
# what counts as blank in a name or a branch: exactly these, so the API's documented pattern
# (`[^ \t\n\r\f\v]`) and this check agree in every regular-expression engine
BLANK = " \t\n\r\f\v"
MAX_SLUG = 60


def hash_secret(secret: str) -> str:
    """How keys and tokens are stored: their sha256, never themselves."""
    return hashlib.sha256(secret.encode()).hexdigest()


def slugify(text: str, limit: int = MAX_SLUG) -> str:
    """`Feature/Login Page` -> `feature-login-page`, `Café Ünïcode` -> `cafe-unicode`: lowercase
    letters, digits and single dashes. A text with nothing of that form (`在庫`, `---`) gets a
    stable slug made from its hash (`x-3fa2c1d0`); only a blank text gets ""."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    slug = _NOT_SLUG.sub("-", plain.lower()).strip("-")[:limit].strip("-")
    if not slug and text.strip(BLANK):
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        slug = "x-" + digest[: max(4, min(8, limit - 2))]
    return slug


def preview_slug(branch: str) -> str:
    """The slug of the preview environment of a git branch."""
    if not isinstance(branch, str) or not branch.strip(BLANK):
        raise InvalidRequest("a preview environment needs a branch name, e.g. --branch feature-x")
    return PREVIEW_PREFIX + slugify(branch, MAX_SLUG - len(PREVIEW_PREFIX))


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a personal access token belongs to."""

    id: str
    name: str
    is_admin: bool


def _time(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def _environment(row: Row) -> ProjectEnvironment:
    return ProjectEnvironment(
        id=row["id"],
        project=row["project"],
        slug=row["slug"],
        kind=cast(EnvironmentKind, row["kind"]),
        branch=row.get("branch"),
        created_at=_time(row["created_at"]),
    )


def _sorted(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: (_ORDER.get(r["kind"], 9), r["slug"]))


class Accounts:
    """Organizations, users, tokens, projects and environment keys over a store. Each public
    method is one transaction. `forget_keys` is called after a key is revoked, so the engine
    drops what its key cache remembers."""

    def __init__(
        self, store: Store, *, clock: Callable[[], float], forget_keys: Callable[[], None]
    ) -> None:
        self.store = store
        self.clock = clock
        self._forget_keys = forget_keys
        self._key_secret: bytes | None = None

    # -- the first admin --------------------------------------------------------------------

    def bootstrap_admin(self) -> str | None:
        """On a database without an admin: make the default organization, an admin user in it,
        and a personal access token for them, returned (the only time it exists in clear).
        None when an admin exists. Safe when several servers start at once: one of them wins."""
        now = self.clock()
        with self.store.transaction() as tx:
            if tx.one("count_admins")["n"]:  # type: ignore[index]
                return None
            org = self._default_organization(tx, now)
            user_id = new_id("usr")
            if not tx.run("insert_user", id=user_id, name=ADMIN_NAME, is_admin=1, now=now):
                return None  # another server made the admin a moment ago
            tx.run("insert_membership", org_id=org["id"], user_id=user_id, role="owner", now=now)
            return self._new_token(tx, user_id, "admin", now)

    def new_admin_token(self) -> str:
        """A fresh token for the admin, revoking their earlier admin tokens (the way back in when
        the one printed at the first start is lost)."""
        now = self.clock()
        with self.store.transaction() as tx:
            admin = tx.one("find_admin")
            if admin is None:
                raise NotFound("there is no admin yet: start `conveyor server` once to make one")
            tx.run("revoke_personal_access_tokens", user_id=admin["id"], name="admin", now=now)
            return self._new_token(tx, admin["id"], "admin", now)

    @staticmethod
    def _default_organization(tx: Tx, now: float) -> Row:
        tx.run(
            "insert_organization",
            id=new_id("org"),
            slug=DEFAULT_ORGANIZATION,
            name="Default",
            now=now,
        )
        org = tx.one("find_organization", slug=DEFAULT_ORGANIZATION)
        assert org is not None
        return org

    @staticmethod
    def _new_token(tx: Tx, user_id: str, name: str, now: float) -> str:
        token = TOKEN_PREFIX + secrets.token_hex(20)
        tx.run(
            "insert_personal_access_token",
            token_hash=hash_secret(token),
            user_id=user_id,
            name=name,
            prefix=token[:12],
            now=now,
        )
        return token

    # -- who is calling -----------------------------------------------------------------------

    def authenticate(self, token: str) -> Caller | None:
        """The user of a live personal access token, or None. Not cached: a revoked token stops
        at once, and people call far less often than workers."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        return self.caller_of_token_hash(hash_secret(token))

    def caller_of_token_hash(self, token_hash: str) -> Caller | None:
        """The user of a live token known by its hash."""
        with self.store.read() as tx:
            row = tx.one("user_for_token", token_hash=token_hash)
        return Caller(row["id"], row["name"], bool(row["is_admin"])) if row else None

    # -- dashboard sessions ---------------------------------------------------------------------

    def open_session(self, token_hash: str, max_age: float) -> str:
        """A new dashboard session of the token known by `token_hash`, for `max_age` seconds;
        returns its id, which the signed cookie carries."""
        session_id = "ses_" + secrets.token_urlsafe(24)
        now = self.clock()
        with self.store.transaction() as tx:
            tx.run("delete_expired_dashboard_sessions", now=now)
            tx.run(
                "insert_dashboard_session",
                id=session_id,
                token_hash=token_hash,
                now=now,
                expires_at=now + max_age,
            )
        return session_id

    def caller_of_session(self, session_id: str, token_hash: str) -> Caller | None:
        """The user of a dashboard session while it is open and its token is live, else None."""
        with self.store.read() as tx:
            row = tx.one("user_for_session", id=session_id, token_hash=token_hash, now=self.clock())
        return Caller(row["id"], row["name"], bool(row["is_admin"])) if row else None

    def end_session(self, session_id: str) -> None:
        """Log out: the session is gone for every copy of its cookie."""
        with self.store.transaction() as tx:
            tx.run("delete_dashboard_session", id=session_id)

    def whoami(self, caller: Caller) -> User:
        with self.store.read() as tx:
            orgs = tx.all("organizations_of_user", user_id=caller.id)
        return User(
            id=caller.id,
            name=caller.name,
            is_admin=caller.is_admin,
            organizations=[
                Organization(id=o["id"], slug=o["slug"], name=o["name"], role=o["role"])
                for o in orgs
            ],
        )

    # -- projects -----------------------------------------------------------------------------

    def create_project(
        self, caller: Caller, name: str, *, slug: str | None = None, organization: str | None = None
    ) -> Project:
        """A project in one of the caller's organizations, with its dev, staging and prod
        environments and their keys. Conflict when the organization has a project of that slug."""
        name = name.strip(BLANK)
        if not name:
            raise InvalidRequest("a project needs a name")
        if slug is not None:
            project_slug = _NOT_SLUG.sub("-", slug.lower()).strip("-")[:MAX_SLUG].strip("-")
        else:
            project_slug = slugify(name)
        if not project_slug:
            raise InvalidRequest(
                f"slug {slug!r} has no letter or digit: pass a slug of letters, digits and dashes"
            )
        now = self.clock()
        with self.store.transaction() as tx:
            org = self._organization_of(tx, caller, organization)
            ref = "proj_" + secrets.token_hex(10)
            if not tx.run(
                "insert_project", id=ref, org_id=org["id"], slug=project_slug, name=name, now=now
            ):
                raise Conflict(
                    f"organization {org['slug']!r} already has a project {project_slug!r}; "
                    "pick another name or pass another slug"
                )
            for kind in STANDING_ENVIRONMENTS:
                self._add_environment(tx, ref, kind, kind, None, now)
            row = tx.one("find_project_of_user", user_id=caller.id, ref=ref)
            assert row is not None
            return self._project(tx, row)

    def _organization_of(self, tx: Tx, caller: Caller, slug: str | None) -> Row:
        orgs = tx.all("organizations_of_user", user_id=caller.id)
        if slug is not None:
            for org in orgs:
                if org["slug"] == slug or org["id"] == slug:
                    return org
            raise NotFound(
                f"organization {slug!r} not found among yours "
                f"({', '.join(o['slug'] for o in orgs) or 'none'})"
            )
        if len(orgs) == 1:
            return orgs[0]
        if not orgs:
            raise NotFound("you belong to no organization; ask an owner to add you to one")
        raise InvalidRequest(
            "you belong to several organizations; say which one: "
            + ", ".join(o["slug"] for o in orgs)
        )

    def list_projects(self, caller: Caller) -> list[Project]:
        with self.store.read() as tx:
            return [self._project(tx, row) for row in tx.all("projects_of_user", user_id=caller.id)]

    def get_project(self, caller: Caller, ref: str) -> Project:
        with self.store.read() as tx:
            return self._project(tx, self._find_project(tx, caller, ref))

    @staticmethod
    def _find_project(tx: Tx, caller: Caller, ref: str) -> Row:
        rows = tx.all("find_project_of_user", user_id=caller.id, ref=ref)
        exact = [r for r in rows if r["id"] == ref]
        if exact:
            return exact[0]
        if len(rows) > 1:
            raise Conflict(
                f"several of your organizations have a project {ref!r} ("
                + ", ".join(f"{r['org_slug']}: {r['id']}" for r in rows)
                + "); use its ref"
            )
        if not rows:
            raise NotFound(
                f"project {ref!r} not found among your projects; "
                "`conveyor projects list` shows them"
            )
        return rows[0]

    @staticmethod
    def _project(tx: Tx, row: Row) -> Project:
        envs = _sorted(tx.all("environments_of_project", project=row["id"]))
        return Project(
            id=row["id"],
            slug=row["slug"],
            name=row["name"],
            organization=row["org_slug"],
            created_at=_time(row["created_at"]),
            environments=[_environment(e) for e in envs],
        )

    @staticmethod
    def adopt_project(tx: Tx, ref: str, now: float) -> None:
        """Give a project that an environment was made for without accounts (`conveyor dev`) its
        row, in the default organization, so every environment belongs to a project."""
        org = Accounts._default_organization(tx, now)
        tx.run("adopt_project", id=ref, org_id=org["id"], now=now)

    # -- environments ---------------------------------------------------------------------------

    def preview_environment(
        self, caller: Caller, ref: str, branch: str
    ) -> tuple[ProjectEnvironment, bool]:
        """The preview environment of `branch`, made (with its key) if it does not exist yet;
        and whether it was made now."""
        slug = preview_slug(branch)
        now = self.clock()
        with self.store.transaction() as tx:
            project = self._find_project(tx, caller, ref)
            created = self._add_environment(tx, project["id"], slug, "preview", branch.strip(), now)
            row = tx.one("find_environment", project=project["id"], slug=slug)
            assert row is not None
            return _environment(row), created

    def _add_environment(
        self, tx: Tx, project: str, slug: str, kind: str, branch: str | None, now: float
    ) -> bool:
        if not tx.run(
            "insert_project_environment",
            id=new_id("env"),
            project=project,
            slug=slug,
            kind=kind,
            branch=branch,
            now=now,
        ):
            return False
        row = tx.one("find_environment", project=project, slug=slug)
        assert row is not None
        self._register_key(tx, row, now)
        return True

    def _environment_row(self, tx: Tx, caller: Caller, ref: str, env: str) -> Row:
        project = self._find_project(tx, caller, ref)
        row = tx.one("find_environment", project=project["id"], slug=env)
        if row is None:
            slugs = [
                r["slug"] for r in _sorted(tx.all("environments_of_project", project=project["id"]))
            ]
            hint = (
                " (a preview environment is made per branch: --env preview --branch NAME)"
                if env == "preview" or env.startswith(PREVIEW_PREFIX)
                else ""
            )
            raise NotFound(
                f"project {project['id']} has no environment {env!r}; "
                f"it has {', '.join(slugs)}{hint}"
            )
        return row

    # -- keys -------------------------------------------------------------------------------------

    def environment_key(self, caller: Caller, ref: str, env: str) -> EnvironmentKey:
        """The environment's live secret key."""
        now = self.clock()
        with self.store.transaction() as tx:
            row = self._environment_row(tx, caller, ref, env)
            key = self._register_key(
                tx, row, now
            )  # a no-op unless the environment predates its key
        return self._key_answer(row, key, rotated=False)

    def rotate_key(self, caller: Caller, ref: str, env: str) -> EnvironmentKey:
        """A new secret key for the environment; every earlier key of it is revoked."""
        now = self.clock()
        with self.store.transaction() as tx:
            row = self._environment_row(tx, caller, ref, env)
            tx.run("raise_key_version", id=row["id"])
            tx.run("revoke_environment_keys", env_id=row["id"], now=now)
            rotated = tx.one("get_environment", id=row["id"])
            assert rotated is not None
            row = rotated
            key = self._register_key(tx, row, now)
        self._forget_keys()
        return self._key_answer(row, key, rotated=True)

    def _register_key(self, tx: Tx, row: Row, now: float) -> str:
        key = self._derive_key(tx, row)
        tx.run(
            "insert_api_key", key_hash=hash_secret(key), env_id=row["id"], prefix=key[:12], now=now
        )
        return key

    def _derive_key(self, tx: Tx, row: Row) -> str:
        prefix = KEY_PREFIXES.get(row["kind"])
        if prefix is None:
            raise InvalidRequest(f"environment {row['slug']!r} has an unknown kind {row['kind']!r}")
        message = f"{row['id']}:{row['key_version']}".encode()
        return prefix + hmac.new(self._secret(tx), message, hashlib.sha256).hexdigest()[:40]

    def _secret(self, tx: Tx) -> bytes:
        if self._key_secret is None:
            tx.run("put_setting", name=_KEY_SECRET_SETTING, value=secrets.token_hex(32))
            row = tx.one("get_setting", name=_KEY_SECRET_SETTING)
            assert row is not None
            self._key_secret = bytes.fromhex(row["value"])
        return self._key_secret

    @staticmethod
    def _key_answer(row: Row, key: str, *, rotated: bool) -> EnvironmentKey:
        return EnvironmentKey(
            project=row["project"],
            environment=row["slug"],
            kind=cast(EnvironmentKind, row["kind"]),
            secret_key=key,
            rotated=rotated,
        )
