"""Integrations (SPEC §8), at `/integrations/{id}` and at `/integrations?id=`."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.http import ApiRequest, endpoint, ok
from chalicelib.paging import PageRequest, paginate
from chalicelib.wiring import integration_service

bp = Blueprint(__name__)
TAG = "integrations"


@endpoint(bp, "/integrations", "POST", scope="write", status=201, tag=TAG, summary="Create an integration")
def create_integration(request: ApiRequest):
    service = integration_service()
    return ok(service.view(service.create(request.account_id, request.json())), status=201,
              message="Integration created successfully")


@endpoint(bp, "/integrations", "GET", scope="read", tag=TAG,
          summary="List integrations (filters: workflow_id, integration_type), or get one with ?id=")
def list_integrations(request: ApiRequest):
    service = integration_service()
    if request.query.get("id"):
        return ok(service.view(service.get(request.account_id, request.query["id"])))
    items, meta = paginate(service.list(request.account_id, request.query), PageRequest.from_query(request.query))
    return ok([service.view(i) for i in items], meta=meta)


@endpoint(bp, "/integrations", "PUT", scope="write", tag=TAG, summary="Update the integration named by ?id=")
def update_integration_by_query(request: ApiRequest):
    return update_integration(request, _query_id(request))


@endpoint(bp, "/integrations", "DELETE", scope="write", tag=TAG, summary="Delete the integration named by ?id=")
def delete_integration_by_query(request: ApiRequest):
    return delete_integration(request, _query_id(request))


@endpoint(bp, "/integrations/{integration_id}", "GET", scope="read", tag=TAG, summary="Get an integration")
def get_integration(request: ApiRequest, integration_id: str):
    service = integration_service()
    return ok(service.view(service.get(request.account_id, integration_id)))


@endpoint(bp, "/integrations/{integration_id}", "PUT", scope="write", tag=TAG,
          summary="Update an integration (given fields replace; a masked config value keeps the stored secret)")
def update_integration(request: ApiRequest, integration_id: str):
    service = integration_service()
    return ok(service.view(service.replace(request.account_id, integration_id, request.json())),
              message="Integration updated")


@endpoint(bp, "/integrations/{integration_id}", "DELETE", scope="write", tag=TAG, summary="Delete an integration")
def delete_integration(request: ApiRequest, integration_id: str):
    integration_service().delete(request.account_id, integration_id)
    return ok({"id": integration_id, "deleted": True}, message="Integration deleted")


def _query_id(request: ApiRequest) -> str:
    from chalicelib.errors import ValidationError

    integration_id = request.query.get("id")
    if not integration_id:
        raise ValidationError.for_field("id", "is required (?id=int_...)")
    return integration_id
