"""Accounts (operator) and the account's API keys (admin)."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.http import ApiRequest, endpoint, ok
from chalicelib.paging import PageRequest, paginate
from chalicelib.services.accounts import parse_name, parse_scopes
from chalicelib.wiring import account_service

bp = Blueprint(__name__)


@endpoint(bp, "/accounts", "POST", scope="operator", status=201, tag="accounts",
          summary="Create an account and its first admin key", request_schema="AccountCreate")
def create_account(request: ApiRequest):
    name = parse_name(request.json_object())
    account, key, raw = account_service().create_account(name)
    data = {"account": account.to_dict(), "api_key": {**key.to_dict(), "key": raw}}
    return ok(data, message="Account created successfully", status=201)


@endpoint(bp, "/api-keys", "POST", scope="admin", status=201, tag="api-keys",
          summary="Create an API key (its value is shown only in this response)", request_schema="ApiKeyCreate")
def create_api_key(request: ApiRequest):
    body = request.json_object()
    key, raw = account_service().create_key(request.caller, parse_name(body), parse_scopes(body))
    return ok({**key.to_dict(), "key": raw}, message="API key created successfully", status=201)


@endpoint(bp, "/api-keys", "GET", scope="admin", tag="api-keys", summary="List the account's API keys (without their values)")
def list_api_keys(request: ApiRequest):
    page = PageRequest.from_query(request.query)
    keys = [key.to_dict() for key in account_service().list_keys(request.caller)]
    items, meta = paginate(keys, page)
    return ok(items, meta=meta)


@endpoint(bp, "/api-keys/{key_id}", "DELETE", scope="admin", tag="api-keys", summary="Revoke an API key, effective at once")
def revoke_api_key(request: ApiRequest, key_id: str):
    key = account_service().revoke_key(request.caller, key_id)
    return ok({"id": key.id, "revoked": True}, message="API key revoked successfully")
