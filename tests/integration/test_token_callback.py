"""A token's signed callback URL: it completes the token with no key, and any other signature,
whatever its characters, is a 404."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from fastapi.testclient import TestClient

if TYPE_CHECKING:
    from conftest import Backend


def test_the_signed_url_completes_the_token_without_a_key(
    api: TestClient, backend: Backend
) -> None:
    token = backend.engine.waitpoints.create_token(backend.env.id)
    signature = backend.engine.waitpoints.token_signature(token["id"])
    response = api.post(
        f"/api/v1/waitpoints/tokens/{token['id']}/callback/{signature}",
        json={"ok": 1},
        headers={"Authorization": ""},
    )
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["output"]) == ("COMPLETED", {"ok": 1})


@pytest.mark.parametrize("signature", ["0" * 32, "short", "%C2%8A%C3%8E1MS", "%E2%9C%93" * 3])
def test_any_other_signature_is_not_found(
    api: TestClient, backend: Backend, signature: str
) -> None:
    token = backend.engine.waitpoints.create_token(backend.env.id)
    response = api.post(f"/api/v1/waitpoints/tokens/{token['id']}/callback/{signature}", json={})
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"
    assert backend.engine.waitpoints.get_token(backend.env.id, token["id"])["status"] == "PENDING"
