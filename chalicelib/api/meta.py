"""Health, the OpenAPI document and the action registry."""

from __future__ import annotations

import threading
import time

from chalice import Blueprint
from pynamodb.exceptions import PynamoDBException

from chalicelib import __version__
from chalicelib.actions.registry import REGISTRY
from chalicelib.api.http import ApiRequest, endpoint, json_response, ok
from chalicelib.api.openapi import openapi_document
from chalicelib.errors import NotFoundError
from chalicelib.ids import now_iso
from chalicelib.logs import logger
from chalicelib.store.models import AccountModel

bp = Blueprint(__name__)

# Load balancers and uptime checks poll health often; storage is asked at most this often
# per instance so that health checks cannot turn into table load.
STORAGE_CHECK_SECONDS = 5.0
_storage_lock = threading.Lock()
_storage_state = {"checked": 0.0, "ok": False}


def _storage_ok() -> bool:
    with _storage_lock:
        if time.monotonic() - _storage_state["checked"] < STORAGE_CHECK_SECONDS:
            return bool(_storage_state["ok"])
        try:
            AccountModel.count("health-check", limit=1)
            healthy = True
        except (PynamoDBException, OSError) as error:
            logger.warning("storage health check failed", extra={"error": str(error)})
            healthy = False
        _storage_state.update(checked=time.monotonic(), ok=healthy)
        return healthy


@endpoint(bp, "/health", "GET", scope=None, tag="meta", summary="Version and whether storage answers (no auth)")
def health(request: ApiRequest):
    healthy = _storage_ok()
    data = {"status": "ok" if healthy else "degraded", "version": __version__,
            "storage": "ok" if healthy else "unavailable", "time": now_iso()}
    return json_response(200 if healthy else 503, {"data": data})


@endpoint(bp, "/openapi.json", "GET", scope=None, tag="meta", summary="This API's OpenAPI 3.1 document (no auth)")
def openapi(request: ApiRequest):
    return json_response(200, openapi_document())


@endpoint(bp, "/actions", "GET", scope="read", tag="actions", summary="List the action registry")
def list_actions(request: ApiRequest):
    specs = REGISTRY.all()
    pack = request.query.get("pack")
    if pack:
        specs = [spec for spec in specs if spec.pack == pack]
    return ok([spec.to_dict() for spec in specs], meta={"total": len(specs)})


@endpoint(bp, "/actions/{ref}", "GET", scope="read", tag="actions", summary="Get an action with its input and output schemas")
def get_action(request: ApiRequest, ref: str):
    spec = REGISTRY.get(ref)
    if spec is None:
        raise NotFoundError(f"action '{ref}' not found")
    return ok(spec.to_dict())
