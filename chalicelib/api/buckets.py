"""API-traffic buckets and traffic ingestion (SPEC §6.4)."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.http import KB, ApiRequest, endpoint, ok
from chalicelib.paging import PageRequest, paginate
from chalicelib.wiring import bucket_service, traffic_ingest

bp = Blueprint(__name__)
TAG = "buckets"


@endpoint(bp, "/buckets", "POST", scope="write", status=201, tag=TAG, summary="Create a bucket")
def create_bucket(request: ApiRequest):
    return ok(bucket_service().create(request.account_id, request.json()), status=201,
              message="Bucket created successfully")


@endpoint(bp, "/buckets", "GET", scope="read", tag=TAG, summary="List buckets (filter: environment)")
def list_buckets(request: ApiRequest):
    items, meta = paginate(bucket_service().list(request.account_id, request.query), PageRequest.from_query(request.query))
    return ok(items, meta=meta)


@endpoint(bp, "/buckets/{bucket_id}", "GET", scope="read", tag=TAG, summary="Get a bucket")
def get_bucket(request: ApiRequest, bucket_id: str):
    return ok(bucket_service().get(request.account_id, bucket_id))


@endpoint(bp, "/buckets/{bucket_id}", "PATCH", scope="write", tag=TAG, summary="Change a bucket's name or environment")
def update_bucket(request: ApiRequest, bucket_id: str):
    return ok(bucket_service().update(request.account_id, bucket_id, request.json()), message="Bucket updated")


@endpoint(bp, "/buckets/{bucket_id}", "DELETE", scope="write", tag=TAG,
          summary="Delete a bucket (409 while a workflow's trigger watches it)")
def delete_bucket(request: ApiRequest, bucket_id: str):
    bucket_service().delete(request.account_id, bucket_id)
    return ok({"id": bucket_id, "deleted": True}, message="Bucket deleted")


@endpoint(bp, "/buckets/{bucket_id}/workflows", "GET", scope="read", tag=TAG,
          summary="The workflows with a trigger on this bucket")
def bucket_workflows(request: ApiRequest, bucket_id: str):
    items, meta = paginate(bucket_service().workflows_of(request.account_id, bucket_id),
                           PageRequest.from_query(request.query))
    return ok(items, meta=meta)


@endpoint(bp, "/buckets/{bucket_id}/traffic", "POST", scope="write", status=202, tag=TAG, body_limit=6 * 1024 * KB,
          summary="Ingest up to 1,000 traffic records: matching request and error triggers fire")
def ingest_traffic(request: ApiRequest, bucket_id: str):
    return ok(traffic_ingest().ingest(request.account_id, bucket_id, request.json()), status=202)
