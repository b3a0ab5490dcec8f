"""Accounts over a real SQLite file: the migration, the first admin, projects and their
environments, environment keys per kind, rotation, preview environments made per branch, and
the rule that a personal access token and an environment key never stand in for each other."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.engine import Accounts, Caller, Engine, hash_secret, preview_slug
from conveyor.errors import Conflict, InvalidRequest, NotFound
from conveyor.store import open_store
from conveyor.store.base import migrations

ACCOUNT_TABLES = {"organizations", "users", "memberships", "projects", "personal_access_tokens"}


@pytest.fixture
def engine(database: str) -> Iterator[Engine]:
    store = open_store(database)
    store.migrate()
    yield Engine(store)
    store.close()


@pytest.fixture
def admin(engine: Engine) -> tuple[str, Caller]:
    token = engine.accounts.bootstrap_admin()
    assert token is not None
    caller = engine.accounts.authenticate(token)
    assert caller is not None
    return token, caller


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }


def add_outsider(engine: Engine) -> tuple[str, Caller]:
    """A second user in an organization of their own (there is no API for this yet)."""
    with engine.store.transaction() as tx:
        tx.run("insert_organization", id="org_other", slug="other", name="Other", now=1.0)
        tx.run("insert_user", id="usr_other", name="outsider", is_admin=0, now=1.0)
        tx.run("insert_membership", org_id="org_other", user_id="usr_other", role="owner", now=1.0)
        token = Accounts._new_token(tx, "usr_other", "test", 1.0)
    caller = engine.accounts.authenticate(token)
    assert caller is not None
    return token, caller


# -- migrations --------------------------------------------------------------------------------


def test_an_empty_database_gets_every_migration_including_accounts(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "empty.db"))
    applied = store.migrate()
    assert applied == [version for version, _ in migrations()]
    assert 5 in applied
    assert tables(tmp_path / "empty.db") >= ACCOUNT_TABLES
    assert store.migrate() == []  # a second start applies nothing
    store.close()


def test_environments_made_before_accounts_get_a_project_in_the_default_organization(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    store = open_store(str(path))
    store._applied_versions()
    for version, sql in migrations():
        if version < 5:
            store._apply_migration(version, sql)
    with store.transaction() as tx:
        tx.run(
            "insert_environment",
            id="env_old",
            project="proj_old",
            slug="dev",
            kind="dev",
            concurrency_limit=None,
            now=100.0,
        )
    assert store.migrate() == [v for v, _ in migrations() if v >= 5]
    with store.read() as tx:
        rows = tx.all("environments_of_project", project="proj_old")
        org = tx.one("find_organization", slug="default")
    assert [r["id"] for r in rows] == ["env_old"]
    assert rows[0]["key_version"] == 0 and rows[0]["branch"] is None
    assert org is not None and org["id"] == "org_default"
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT id, org_id FROM projects").fetchall() == [
            ("proj_old", "org_default")
        ]
    store.close()


def test_the_account_migration_on_an_empty_database_makes_no_organization(engine: Engine) -> None:
    with engine.store.read() as tx:
        assert tx.one("find_organization", slug="default") is None


# -- the first admin ---------------------------------------------------------------------------


def test_the_first_admin_token_is_made_once(engine: Engine) -> None:
    token = engine.accounts.bootstrap_admin()
    assert token is not None and token.startswith("cv_pat_") and len(token) > 30
    assert engine.accounts.bootstrap_admin() is None
    assert engine.accounts.bootstrap_admin() is None
    caller = engine.accounts.authenticate(token)
    assert caller is not None and caller.is_admin and caller.name == "admin"
    me = engine.accounts.whoami(caller)
    assert [(o.slug, o.role) for o in me.organizations] == [("default", "owner")]


def test_a_new_admin_token_revokes_the_old_one(engine: Engine, admin: tuple[str, Caller]) -> None:
    old, caller = admin
    new = engine.accounts.new_admin_token()
    assert new != old
    assert engine.accounts.authenticate(old) is None
    again = engine.accounts.authenticate(new)
    assert again is not None and again.id == caller.id


def test_tokens_and_keys_are_stored_only_as_hashes(
    engine: Engine, admin: tuple[str, Caller], tmp_path: Path, database: str
) -> None:
    if not database.endswith(".db"):
        pytest.skip("reads the SQLite file itself")
    token, caller = admin
    project = engine.accounts.create_project(caller, "Shop")
    key = engine.accounts.environment_key(caller, project.id, "prod").secret_key
    engine.store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("conveyor.db"))
    assert token.encode() not in raw and key.encode() not in raw
    assert hash_secret(token).encode() in raw and hash_secret(key).encode() in raw


# -- projects and environments -------------------------------------------------------------------


def test_a_project_gets_dev_staging_and_prod(engine: Engine, admin: tuple[str, Caller]) -> None:
    _, caller = admin
    project = engine.accounts.create_project(caller, "My Shop")
    assert project.id.startswith("proj_")
    assert (project.slug, project.name, project.organization) == ("my-shop", "My Shop", "default")
    assert [(e.slug, e.kind) for e in project.environments] == [
        ("dev", "dev"),
        ("staging", "staging"),
        ("prod", "prod"),
    ]
    assert [p.id for p in engine.accounts.list_projects(caller)] == [project.id]
    assert engine.accounts.get_project(caller, "my-shop").id == project.id  # by slug too


def test_a_taken_slug_is_a_conflict_and_any_name_that_is_not_blank_gets_a_slug(
    engine: Engine, admin: tuple[str, Caller]
) -> None:
    _, caller = admin
    engine.accounts.create_project(caller, "Shop")
    with pytest.raises(Conflict, match="already has a project 'shop'"):
        engine.accounts.create_project(caller, "shop")
    with pytest.raises(InvalidRequest, match="needs a name"):
        engine.accounts.create_project(caller, " \t ")
    with pytest.raises(InvalidRequest, match="no letter or digit"):
        engine.accounts.create_project(caller, "Shop 2", slug="---")
    # accents fold; a name in another script gets a stable slug from its hash, the same each time
    assert engine.accounts.create_project(caller, "Café Ünïcode").slug == "cafe-unicode"
    japanese = engine.accounts.create_project(caller, "在庫")
    assert re.fullmatch(r"x-[0-9a-f]{8}", japanese.slug)
    with pytest.raises(Conflict):
        engine.accounts.create_project(caller, "在庫")
    preview, _ = engine.accounts.preview_environment(caller, japanese.id, "機能/ログイン")
    assert re.fullmatch(r"preview-x-[0-9a-f]{8}", preview.slug)
    assert len(engine.accounts.list_projects(caller)) == 3


def test_each_environment_key_has_the_prefix_of_its_kind(
    engine: Engine, admin: tuple[str, Caller]
) -> None:
    _, caller = admin
    project = engine.accounts.create_project(caller, "Shop")
    engine.accounts.preview_environment(caller, project.id, "feature/login")
    expected = {
        "dev": "cv_dev_",
        "staging": "cv_stg_",
        "prod": "cv_prod_",
        "preview-feature-login": "cv_prev_",
    }
    keys = {}
    for slug, prefix in expected.items():
        key = engine.accounts.environment_key(caller, project.id, slug)
        assert key.secret_key.startswith(prefix), (slug, key.secret_key)
        env = engine.environments.authenticate(key.secret_key)
        assert env is not None and (env.project, env.slug) == (project.id, slug)
        keys[slug] = key.secret_key
    assert len(set(keys.values())) == 4
    # showing again shows the same key
    assert engine.accounts.environment_key(caller, project.id, "prod").secret_key == keys["prod"]


def test_rotation_gives_a_working_key_and_revokes_the_old_one(
    engine: Engine, admin: tuple[str, Caller]
) -> None:
    _, caller = admin
    project = engine.accounts.create_project(caller, "Shop")
    old = engine.accounts.environment_key(caller, project.id, "prod").secret_key
    assert engine.environments.authenticate(old) is not None  # now in the engine's key cache
    new = engine.accounts.rotate_key(caller, project.id, "prod")
    assert new.rotated and new.secret_key != old and new.secret_key.startswith("cv_prod_")
    assert engine.environments.authenticate(old) is None  # at once, despite the cache
    env = engine.environments.authenticate(new.secret_key)
    assert env is not None and env.slug == "prod"
    assert engine.accounts.environment_key(caller, project.id, "prod").secret_key == new.secret_key
    # other environments keep their keys
    assert (
        engine.environments.authenticate(
            engine.accounts.environment_key(caller, project.id, "dev").secret_key
        )
        is not None
    )


def test_a_preview_environment_is_made_on_demand_per_branch(
    engine: Engine, admin: tuple[str, Caller]
) -> None:
    _, caller = admin
    project = engine.accounts.create_project(caller, "Shop")
    env, created = engine.accounts.preview_environment(caller, project.id, "Feature/Login")
    assert created and (env.slug, env.kind, env.branch) == (
        "preview-feature-login",
        "preview",
        "Feature/Login",
    )
    again, created_again = engine.accounts.preview_environment(caller, project.id, "Feature/Login")
    assert not created_again and again.id == env.id
    slugs = [e.slug for e in engine.accounts.get_project(caller, project.id).environments]
    assert slugs == ["dev", "staging", "prod", "preview-feature-login"]
    with pytest.raises(NotFound, match="--branch"):
        engine.accounts.environment_key(caller, project.id, "preview-other")
    with pytest.raises(InvalidRequest):
        preview_slug(" \n ")
    assert preview_slug("///") == preview_slug("///") != preview_slug("---")  # stable, distinct


def test_a_personal_access_token_is_no_environment_key_and_back(
    engine: Engine, admin: tuple[str, Caller]
) -> None:
    token, caller = admin
    project = engine.accounts.create_project(caller, "Shop")
    key = engine.accounts.environment_key(caller, project.id, "dev").secret_key
    assert engine.environments.authenticate(token) is None
    assert engine.accounts.authenticate(key) is None


def test_a_user_sees_only_the_projects_of_their_organizations(
    engine: Engine, admin: tuple[str, Caller]
) -> None:
    _, caller = admin
    project = engine.accounts.create_project(caller, "Shop")
    _, outsider = add_outsider(engine)
    assert engine.accounts.list_projects(outsider) == []
    with pytest.raises(NotFound):
        engine.accounts.get_project(outsider, project.id)
    with pytest.raises(NotFound):
        engine.accounts.environment_key(outsider, project.id, "prod")
    with pytest.raises(NotFound):
        engine.accounts.rotate_key(outsider, project.id, "prod")
    with pytest.raises(NotFound):
        engine.accounts.preview_environment(outsider, project.id, "x")
    # the same slug in another organization is no conflict
    theirs = engine.accounts.create_project(outsider, "Shop")
    assert theirs.organization == "other" and theirs.id != project.id


def test_dev_environments_belong_to_a_project_row(engine: Engine) -> None:
    engine.environments.ensure("proj_local", "dev", "dev")
    with engine.store.read() as tx:
        org = tx.one("find_organization", slug="default")
        rows = tx.all("environments_of_project", project="proj_local")
    assert org is not None and len(rows) == 1
    token = engine.accounts.bootstrap_admin()  # a server started later on the dev database
    assert token is not None
    caller = engine.accounts.authenticate(token)
    assert caller is not None
    assert [p.id for p in engine.accounts.list_projects(caller)] == ["proj_local"]
