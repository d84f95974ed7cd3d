"""Authentication, scopes, accounts and API keys (SPEC §1)."""

import pytest

from chalicelib.services.accounts import AccountService, hash_key
from chalicelib.store.models import ApiKeyModel
from tests.functional.conftest import Api, new_tenant


def test_missing_key_is_401_with_the_error_envelope(api):
    reply = api.get("/api/v1/workflows", key="")
    assert reply.status == 401
    assert reply.error["code"] == "UNAUTHORIZED"
    assert reply.error["details"] == []
    assert "Authorization: Bearer" in reply.error["message"]


def test_unknown_key_is_401(api):
    reply = api.get("/api/v1/workflows", key="slk_not-a-real-key")
    assert reply.status == 401
    assert reply.error == {"code": "UNAUTHORIZED", "message": "the API key is not valid", "details": []}


def test_both_auth_headers_are_accepted(tenant, chalice_client):
    bearer = Api(chalice_client, None).get("/api/v1/workflows", headers={"Authorization": f"Bearer {tenant.key}"})
    x_api_key = Api(chalice_client, None).get("/api/v1/workflows", headers={"X-Api-Key": tenant.key})
    assert (bearer.status, x_api_key.status) == (200, 200)


def test_keys_are_stored_hashed_never_in_clear(tenant):
    item = ApiKeyModel.get(hash_key(tenant.key))
    assert item.key_hash == hash_key(tenant.key)
    assert tenant.key not in repr(item.attribute_values)


def test_health_and_openapi_need_no_key(chalice_client):
    anonymous = Api(chalice_client, None)
    health = anonymous.get("/api/v1/health")
    assert health.status == 200
    assert health.data["status"] == "ok"
    assert health.data["storage"] == "ok"
    assert anonymous.get("/api/v1/openapi.json").status == 200


def test_create_api_key_shows_the_key_once_and_lists_without_it(api):
    created = api.post("/api/v1/api-keys", {"name": "ci", "scopes": ["read", "execute"]})
    assert created.status == 201
    assert set(created.data) == {"id", "name", "scopes", "prefix", "key", "created_at"}
    assert created.data["scopes"] == ["read", "execute"]
    assert created.data["id"].startswith("key_")
    assert created.data["key"].startswith("slk_")
    assert created.body["message"] == "API key created successfully"

    listed = api.get("/api/v1/api-keys")
    assert listed.status == 200
    assert [k["name"] for k in listed.data] == ["default admin key", "ci"]
    assert all("key" not in k for k in listed.data)
    assert listed.body["meta"] == {"page": 1, "per_page": 20, "total": 2, "total_pages": 1}


def test_scopes_are_enforced(api):
    reader = api.as_key(api.post("/api/v1/api-keys", {"name": "r", "scopes": ["read"]}).data["key"])
    assert reader.get("/api/v1/workflows").status == 200
    denied = reader.post("/api/v1/workflows", {"name": "x"})
    assert denied.status == 403
    assert denied.error["code"] == "FORBIDDEN"
    assert "'write'" in denied.error["message"]
    assert reader.get("/api/v1/api-keys").status == 403


def test_admin_implies_read_write_and_execute_but_not_operator(api):
    assert api.post("/api/v1/workflows", {"name": "allowed"}).status == 201
    reply = api.post("/api/v1/accounts", {"name": "other"})
    assert reply.status == 403
    assert reply.error["code"] == "FORBIDDEN"


def test_an_admin_cannot_grant_operator(api):
    reply = api.post("/api/v1/api-keys", {"name": "escalate", "scopes": ["operator"]})
    assert reply.status == 403
    assert reply.error["message"] == "only an operator key can grant the 'operator' scope"


@pytest.mark.parametrize("body, field", [
    ({"scopes": ["read"]}, "name"),
    ({"name": "k"}, "scopes"),
    ({"name": "k", "scopes": []}, "scopes"),
    ({"name": "k", "scopes": ["read", "root"]}, "scopes"),
    ({"name": 5, "scopes": ["read"]}, "name"),
])
def test_bad_api_key_input_is_400_naming_the_field(api, body, field):
    reply = api.post("/api/v1/api-keys", body)
    assert reply.status == 400
    assert reply.error["code"] == "VALIDATION_ERROR"
    assert reply.error["details"][0]["field"] == field


def test_revocation_is_effective_at_once(api):
    created = api.post("/api/v1/api-keys", {"name": "temp", "scopes": ["read"]}).data
    temp = api.as_key(created["key"])
    assert temp.get("/api/v1/workflows").status == 200
    revoked = api.delete(f"/api/v1/api-keys/{created['id']}")
    assert revoked.status == 200
    assert revoked.data == {"id": created["id"], "revoked": True}
    assert temp.get("/api/v1/workflows").status == 401
    assert [k["id"] for k in api.get("/api/v1/api-keys").data if k["id"] == created["id"]] == []
    assert api.delete(f"/api/v1/api-keys/{created['id']}").status == 404


def test_another_accounts_key_cannot_be_revoked(chalice_client, api):
    other = new_tenant(chalice_client, "other")
    other_key = other.api.post("/api/v1/api-keys", {"name": "theirs", "scopes": ["read"]}).data
    reply = api.delete(f"/api/v1/api-keys/{other_key['id']}")
    assert reply.status == 404
    assert reply.error["code"] == "NOT_FOUND"
    assert other.api.as_key(other_key["key"]).get("/api/v1/workflows").status == 200


@pytest.fixture
def operator(chalice_client, monkeypatch):
    """An API client holding the deployment's configured operator key."""
    from chalicelib.config import get_settings

    monkeypatch.setenv("SLUICE_BOOTSTRAP_KEY", "slk_operator-test-key")
    get_settings.cache_clear()
    get_settings()  # cached now, outside the test client's stage environment
    yield Api(chalice_client, "slk_operator-test-key")
    monkeypatch.delenv("SLUICE_BOOTSTRAP_KEY")
    get_settings.cache_clear()
    get_settings()


def test_operator_bootstrap_key_creates_accounts(chalice_client, operator):
    reply = operator.post("/api/v1/accounts", {"name": "Acme"})
    assert reply.status == 201
    assert reply.body["message"] == "Account created successfully"
    account, key = reply.data["account"], reply.data["api_key"]
    assert set(account) == {"id", "name", "created_at"}
    assert account["name"] == "Acme" and account["id"].startswith("acc_")
    assert key["scopes"] == ["admin"] and key["key"].startswith("slk_")
    acme = Api(chalice_client, key["key"])
    assert acme.post("/api/v1/workflows", {"name": "first"}).status == 201
    # The operator key is also admin of its own account (`local`).
    assert operator.get("/api/v1/api-keys").data[0]["scopes"] == ["operator", "admin"]


def test_a_revoked_bootstrap_key_stays_revoked(aws):
    service = AccountService()
    _, key = service.ensure_bootstrap_key("slk_bootstrap-revoke")
    service.repository.revoke_key(key, "2026-01-01T00:00:00.000Z")
    service.ensure_bootstrap_key("slk_bootstrap-revoke")
    assert service.repository.key_by_hash(hash_key("slk_bootstrap-revoke")).revoked_at == "2026-01-01T00:00:00.000Z"


def test_account_name_is_required(operator):
    reply = operator.post("/api/v1/accounts", {})
    assert reply.status == 400
    assert reply.error["details"] == [{"field": "name", "message": "is required and must be a non-empty string"}]
