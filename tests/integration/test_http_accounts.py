"""The account routes over HTTP: a personal access token creates and lists projects, shows and
rotates environment keys and makes preview environments; environment keys open none of it,
a token opens no run route, and a key of one environment sees nothing of another."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient

from conveyor.server import create_app
from tests.integration.conftest import KEY, task_definitions

if TYPE_CHECKING:
    from conftest import Backend


def error_of(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    return str(body["error"]["message"])


@pytest.fixture
def token(backend: Backend) -> str:
    made = backend.engine.accounts.bootstrap_admin()
    assert made is not None
    return made


@pytest.fixture
def http(backend: Backend) -> Iterator[TestClient]:
    """The app without a default key: each request says which credential it sends."""
    with TestClient(create_app(backend.engine)) as client:
        yield client


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def create(http: TestClient, token: str, name: str = "Shop") -> dict[str, Any]:
    response = http.post("/api/v1/projects", json={"name": name}, headers=bearer(token))
    assert response.status_code == 201, response.text
    return dict(response.json())


def key_of(http: TestClient, token: str, ref: str, env: str) -> str:
    response = http.get(f"/api/v1/projects/{ref}/environments/{env}/key", headers=bearer(token))
    assert response.status_code == 200, response.text
    return str(response.json()["secret_key"])


# -- who is calling --------------------------------------------------------------------------------


def test_me_names_the_user_of_the_token(http: TestClient, token: str) -> None:
    body = http.get("/api/v1/me", headers=bearer(token)).json()
    assert body["name"] == "admin" and body["is_admin"] is True
    assert [o["slug"] for o in body["organizations"]] == ["default"]


def test_account_routes_need_a_personal_access_token(http: TestClient, token: str) -> None:
    error_of(http.get("/api/v1/projects"), 401, "unauthorized")
    message = error_of(http.get("/api/v1/projects", headers=bearer(KEY)), 401, "unauthorized")
    assert "personal access token" in message
    error_of(
        http.get("/api/v1/projects", headers=bearer("cv_pat_" + "0" * 40)), 401, "unauthorized"
    )
    error_of(
        http.post("/api/v1/projects", json={"name": "x"}, headers=bearer(KEY)), 401, "unauthorized"
    )


def test_a_personal_access_token_opens_no_run_route(http: TestClient, token: str) -> None:
    message = error_of(http.get("/api/v1/runs", headers=bearer(token)), 401, "unauthorized")
    assert "not an environment key" in message
    error_of(
        http.post("/api/v1/tasks/hello/trigger", json={"payload": {}}, headers=bearer(token)),
        401,
        "unauthorized",
    )


# -- projects --------------------------------------------------------------------------------------


def test_create_then_list_and_retrieve_projects(http: TestClient, token: str) -> None:
    project = create(http, token, "My Shop")
    assert project["id"].startswith("proj_") and project["slug"] == "my-shop"
    assert [e["slug"] for e in project["environments"]] == ["dev", "staging", "prod"]
    listed = http.get("/api/v1/projects", headers=bearer(token)).json()["data"]
    assert project["id"] in [p["id"] for p in listed]
    assert http.get("/api/v1/projects/my-shop", headers=bearer(token)).json()["id"] == project["id"]
    envs = http.get(f"/api/v1/projects/{project['id']}/environments", headers=bearer(token)).json()[
        "data"
    ]
    assert [(e["slug"], e["kind"]) for e in envs] == [
        ("dev", "dev"),
        ("staging", "staging"),
        ("prod", "prod"),
    ]


def test_bad_project_requests_are_4xx_with_the_error_shape(http: TestClient, token: str) -> None:
    create(http, token, "Shop")
    assert "already has a project" in error_of(
        http.post("/api/v1/projects", json={"name": "Shop"}, headers=bearer(token)), 409, "conflict"
    )
    assert "name" in error_of(
        http.post("/api/v1/projects", json={}, headers=bearer(token)), 422, "invalid_request"
    )
    error_of(
        http.post("/api/v1/projects", json={"name": "x", "colour": 1}, headers=bearer(token)),
        422,
        "invalid_request",
    )
    error_of(
        http.post("/api/v1/projects", json={"name": " \t "}, headers=bearer(token)),
        422,
        "invalid_request",
    )
    error_of(
        http.post("/api/v1/projects", json={"name": "x", "slug": "---"}, headers=bearer(token)),
        422,
        "invalid_request",
    )
    error_of(
        http.post(
            "/api/v1/projects", json={"name": "x", "organization": "nope"}, headers=bearer(token)
        ),
        404,
        "not_found",
    )
    error_of(http.get("/api/v1/projects/proj_nope", headers=bearer(token)), 404, "not_found")
    error_of(
        http.get("/api/v1/projects/shop/environments/qa/key", headers=bearer(token)),
        404,
        "not_found",
    )
    error_of(
        http.post("/api/v1/projects/shop/environments", json={"branch": ""}, headers=bearer(token)),
        422,
        "invalid_request",
    )


# -- keys ------------------------------------------------------------------------------------------


def test_show_key_answers_the_key_of_the_environment_and_is_not_cached(
    http: TestClient, token: str
) -> None:
    project = create(http, token)
    response = http.get(
        f"/api/v1/projects/{project['id']}/environments/staging/key", headers=bearer(token)
    )
    body = response.json()
    assert response.headers["cache-control"] == "no-store"
    assert body["secret_key"].startswith("cv_stg_")
    assert (body["project"], body["environment"], body["kind"], body["rotated"]) == (
        project["id"],
        "staging",
        "staging",
        False,
    )
    assert http.get("/api/v1/runs", headers=bearer(body["secret_key"])).status_code == 200


def test_rotation_revokes_the_old_key_at_once(http: TestClient, token: str) -> None:
    project = create(http, token)
    old = key_of(http, token, project["id"], "prod")
    assert http.get("/api/v1/runs", headers=bearer(old)).status_code == 200
    rotated = http.post(
        f"/api/v1/projects/{project['id']}/environments/prod/key/rotate", headers=bearer(token)
    )
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret_key"]
    assert new.startswith("cv_prod_") and new != old and rotated.json()["rotated"] is True
    error_of(http.get("/api/v1/runs", headers=bearer(old)), 401, "unauthorized")
    assert http.get("/api/v1/runs", headers=bearer(new)).status_code == 200
    assert key_of(http, token, project["id"], "prod") == new


def test_a_preview_environment_is_made_on_demand(http: TestClient, token: str) -> None:
    project = create(http, token)
    url = f"/api/v1/projects/{project['id']}/environments"
    first = http.post(url, json={"branch": "feature/checkout"}, headers=bearer(token))
    assert first.status_code == 201, first.text
    assert (first.json()["slug"], first.json()["kind"], first.json()["branch"]) == (
        "preview-feature-checkout",
        "preview",
        "feature/checkout",
    )
    second = http.post(url, json={"branch": "feature/checkout"}, headers=bearer(token))
    assert second.status_code == 200 and second.json()["id"] == first.json()["id"]
    assert key_of(http, token, project["id"], "preview-feature-checkout").startswith("cv_prev_")
    slugs = [e["slug"] for e in http.get(url, headers=bearer(token)).json()["data"]]
    assert slugs == ["dev", "staging", "prod", "preview-feature-checkout"]


# -- one environment's key sees nothing of another -------------------------------------------------


def test_a_key_of_one_environment_sees_nothing_of_another(
    http: TestClient, token: str, backend: Backend
) -> None:
    project = create(http, token)
    prod_key, dev_key = (
        key_of(http, token, project["id"], "prod"),
        key_of(http, token, project["id"], "dev"),
    )
    prod_env = backend.engine.environments.authenticate(prod_key)
    assert prod_env is not None
    backend.engine.workers.register(prod_env.id, "worker-prod", "worker-prod", task_definitions())
    triggered = http.post(
        "/api/v1/tasks/hello/trigger", json={"payload": {"n": 1}}, headers=bearer(prod_key)
    )
    assert triggered.status_code == 201, triggered.text
    run_id = triggered.json()["id"]

    assert http.get(f"/api/v1/runs/{run_id}", headers=bearer(prod_key)).status_code == 200
    error_of(http.get(f"/api/v1/runs/{run_id}", headers=bearer(dev_key)), 404, "not_found")
    error_of(http.post(f"/api/v1/runs/{run_id}/cancel", headers=bearer(dev_key)), 404, "not_found")
    assert http.get("/api/v1/runs", headers=bearer(dev_key)).json()["data"] == []
    assert http.get("/api/v1/tasks", headers=bearer(dev_key)).json()["data"] == []
    # nor does the key of another project's environment
    other = create(http, token, "Other")
    other_prod = key_of(http, token, other["id"], "prod")
    error_of(http.get(f"/api/v1/runs/{run_id}", headers=bearer(other_prod)), 404, "not_found")
    assert http.get(f"/api/v1/runs/{run_id}", headers=bearer(prod_key)).json()["status"] == "QUEUED"


def test_the_openapi_document_lists_the_account_routes(http: TestClient) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    for path in (
        "/api/v1/me",
        "/api/v1/projects",
        "/api/v1/projects/{ref}",
        "/api/v1/projects/{ref}/environments",
        "/api/v1/projects/{ref}/environments/{env}/key",
        "/api/v1/projects/{ref}/environments/{env}/key/rotate",
    ):
        assert path in paths, path
    assert "401" in paths["/api/v1/projects"]["post"]["responses"]
