"""Who is looking at the dashboard, which environment they see, and whether a form is theirs.

    conveyor dev      local: one environment, no login, answered only to this machine
    conveyor server   login with a personal access token; the environment is chosen among the
                      environments of the user's projects, and checked again on every request

Every page and stream takes its environment from a Viewer made here, never from the request,
so no page can show another environment's data. Every POST repeats the session's CSRF token
and, when the browser says where it comes from (Origin), must come from this very host.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass, field
from typing import Annotated
from urllib.parse import parse_qsl, urlsplit

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from conveyor.dashboard.session import COOKIE, DEFAULT_MAX_AGE, Session, SessionSigner
from conveyor.engine import Caller, Engine
from conveyor.errors import NotFound
from conveyor.models import Project

SCOPE_CACHE_SECONDS = 5.0
_LOOPBACK_CLIENTS = ("127.", "::1", "::ffff:127.")
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})


@dataclass(frozen=True, slots=True)
class DashboardSettings:
    """How the dashboard decides who is looking. With `local_env_id` (conveyor dev) it shows
    that environment to this machine without a login; otherwise people log in."""

    local_env_id: str | None = None
    local_secret_key: str | None = None  # the dev key, shown on the API keys page
    secure_cookies: bool = False  # set behind HTTPS so the cookie never travels in clear
    session_max_age: float = DEFAULT_MAX_AGE


@dataclass(frozen=True, slots=True)
class Scope:
    """The environment a viewer sees."""

    env_id: str
    project: str
    project_name: str
    slug: str
    kind: str


class DashboardProblem(Exception):
    """Something the dashboard answers with a page of its own rather than JSON."""

    status = 400


class LoginRequired(DashboardProblem):
    """Log in first."""

    status = 401


class EnvironmentRequired(DashboardProblem):
    """Choose an environment first."""

    status = 409


class Refused(DashboardProblem):
    """The request is not allowed (a form without its CSRF token, a foreign machine)."""

    status = 403


@dataclass
class Viewer:
    """A browser with its session: in dev, this machine; on a server, a logged-in user."""

    session: Session
    local: bool
    caller: Caller | None = None
    scope: Scope | None = None
    projects: list[Project] = field(default_factory=list)

    @property
    def env_id(self) -> str:
        if self.scope is None:
            raise EnvironmentRequired()
        return self.scope.env_id

    @property
    def name(self) -> str:
        return self.caller.name if self.caller else "local"


class Access:
    """Sessions, logins and environment checks over an engine (kept on `app.state.dashboard`)."""

    def __init__(self, engine: Engine, settings: DashboardSettings) -> None:
        self.engine = engine
        self.settings = settings
        self.signer = SessionSigner(
            engine.waitpoints.token_secret(), max_age=settings.session_max_age
        )
        self._projects: dict[str, tuple[float, list[Project]]] = {}
        self._local_scope: Scope | None = None

    @property
    def local(self) -> bool:
        return self.settings.local_env_id is not None

    # -- the cookie ---------------------------------------------------------------------------

    def session(self, request: Request) -> Session:
        """The request's session, made (and marked to be written back) when it has none."""
        session: Session | None = getattr(request.state, "session", None)
        if session is None:
            session = self.signer.loads(request.cookies.get(COOKIE), now=time.time())
            if session is None:
                session = Session()
                request.state.session_dirty = True
            request.state.session = session
        return session

    def cookie_value(self, request: Request) -> str | None:
        """The cookie to send back when the session changed during the request."""
        if not getattr(request.state, "session_dirty", False):
            return None
        return self.signer.dumps(request.state.session)

    @staticmethod
    def changed(request: Request) -> None:
        request.state.session_dirty = True

    # -- logging in and out ---------------------------------------------------------------------

    def log_in(self, request: Request, token: str) -> Caller | None:
        """Check a personal access token; on success the session becomes the user's, with a
        fresh CSRF token, viewing the first environment of their first project."""
        caller = self.engine.accounts.authenticate(token.strip())
        if caller is None:
            return None
        from conveyor.engine import hash_secret

        token_hash = hash_secret(token.strip())
        session = Session(
            token_hash=token_hash,
            user=caller.name,
            session_id=self.engine.accounts.open_session(token_hash, self.settings.session_max_age),
            expires=time.time() + self.settings.session_max_age,
        )
        projects = self.engine.accounts.list_projects(caller)
        for project in projects:
            if project.environments:
                session.env_id = project.environments[0].id
                break
        request.state.session = session
        self.changed(request)
        self._projects.pop(caller.id, None)
        return caller

    def log_out(self, request: Request) -> None:
        ended = self.session(request).session_id
        if ended is not None:
            self.engine.accounts.end_session(ended)
        request.state.session = Session()
        self.changed(request)

    # -- who is looking -----------------------------------------------------------------------

    def viewer(self, request: Request) -> Viewer:
        """The Viewer of a request; LoginRequired or Refused when there is none. Blocking (it may
        read the database): call it off the event loop."""
        session = self.session(request)
        if self.local:
            _check_local(request)
            return Viewer(session, local=True, scope=self._local(), projects=[])
        if not session.token_hash or not session.session_id:
            raise LoginRequired()
        caller = self.engine.accounts.caller_of_session(session.session_id, session.token_hash)
        if caller is None:  # logged out, expired, or its token was revoked: the session is over
            self.log_out(request)
            raise LoginRequired()
        projects = self.projects(caller)
        viewer = Viewer(session, local=False, caller=caller, projects=projects)
        if session.env_id is not None:
            viewer.scope = _find_scope(projects, session.env_id)
            if viewer.scope is None:  # no longer one of theirs (or never was): choose again
                session.env_id = None
                self.changed(request)
        return viewer

    def projects(self, caller: Caller, *, fresh: bool = False) -> list[Project]:
        """The caller's projects and environments, remembered for a few seconds: every page
        checks the environment against them."""
        now = time.monotonic()
        cached = self._projects.get(caller.id)
        if cached is not None and cached[0] > now and not fresh:
            return cached[1]
        projects = self.engine.accounts.list_projects(caller)
        if len(self._projects) > 10_000:
            self._projects.clear()
        self._projects[caller.id] = (now + SCOPE_CACHE_SECONDS, projects)
        return projects

    def choose(self, request: Request, viewer: Viewer, env_id: str) -> Scope:
        """View another environment: one of the viewer's, or NotFound."""
        if viewer.local:
            local = self._local()
            if env_id != local.env_id:
                raise NotFound(f"environment {env_id} not found")
            return local
        assert viewer.caller is not None
        scope = _find_scope(self.projects(viewer.caller, fresh=True), env_id)
        if scope is None:
            raise NotFound(f"environment {env_id} is not one of your projects' environments")
        viewer.session.env_id = scope.env_id
        viewer.scope = scope
        self.changed(request)
        return scope

    def _local(self) -> Scope:
        if self._local_scope is None:
            assert self.settings.local_env_id is not None
            env = self.engine.environments.get(self.settings.local_env_id)
            self._local_scope = Scope(env.id, env.project, env.project, env.slug, env.kind)
        return self._local_scope

    # -- forms ------------------------------------------------------------------------------------

    async def form(self, request: Request) -> dict[str, str]:
        """The fields of a POSTed form, after checking it comes from a page of this dashboard:
        the session's CSRF token, and the Origin when the browser sends one."""
        origin = request.headers.get("origin")
        if (
            origin
            and origin != "null"
            and urlsplit(origin).netloc != request.headers.get("host", "")
        ):
            raise Refused("this form was sent from another site; use the dashboard's own pages")
        body = (await request.body()).decode("utf-8", "replace")
        fields = dict(parse_qsl(body, keep_blank_values=True))
        session = self.session(request)
        sent = fields.pop("csrf", "") or request.headers.get("x-csrf-token", "")
        if not sent or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
            raise Refused(
                "this form has expired or was not made by this dashboard; "
                "reload the page and try again"
            )
        return fields


def _find_scope(projects: list[Project], env_id: str) -> Scope | None:
    for project in projects:
        for env in project.environments:
            if env.id == env_id:
                return Scope(env.id, project.id, project.name, env.slug, env.kind)
    return None


def _check_local(request: Request) -> None:
    """The dev dashboard has no login: it answers only to this machine, and only under a local
    host name (so a web page that rebinds its DNS to 127.0.0.1 cannot read it)."""
    client = request.client.host if request.client else ""
    if (
        not client.startswith(_LOOPBACK_CLIENTS)
        or _host_name(request.headers.get("host", "")) not in _LOOPBACK_HOSTS
    ):
        raise Refused(
            "the `conveyor dev` dashboard has no login, so it answers only on this machine: "
            "open it at http://127.0.0.1:<port>/ (run `conveyor server` to share a dashboard)"
        )


def _host_name(header: str) -> str:
    """`127.0.0.1:3030` -> `127.0.0.1`, `[::1]:3030` -> `[::1]`."""
    if header.startswith("["):
        return header[: header.find("]") + 1]
    return header.rsplit(":", 1)[0]


def access_of(request: Request) -> Access:
    access: Access = request.app.state.dashboard
    return access


async def current_viewer(request: Request) -> Viewer:
    access = access_of(request)
    if access.local and access._local_scope is not None:
        session = access.session(request)
        _check_local(request)
        return Viewer(session, local=True, scope=access._local_scope)
    return await run_in_threadpool(access.viewer, request)


async def scoped_viewer(viewer: Annotated[Viewer, Depends(current_viewer)]) -> Viewer:
    """A viewer with an environment chosen."""
    if viewer.scope is None:
        raise EnvironmentRequired()
    return viewer


async def checked_form(request: Request) -> dict[str, str]:
    return await access_of(request).form(request)


ViewerDep = Annotated[Viewer, Depends(current_viewer)]
ScopedDep = Annotated[Viewer, Depends(scoped_viewer)]
FormDep = Annotated[dict[str, str], Depends(checked_form)]
