"""Documents and extraction schemas (SPEC §5)."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.http import KB, ApiRequest, endpoint, ok
from chalicelib.paging import PageRequest, paginate
from chalicelib.wiring import document_service, extraction_schemas

bp = Blueprint(__name__)
TAG = "documents"


@endpoint(bp, "/documents", "POST", scope="write", status=201, tag=TAG, body_limit=7 * 1024 * KB,
          summary="Store a document (base64, at most 5 MB); it is a document.uploaded event")
def upload_document(request: ApiRequest):
    return ok(document_service().upload(request.account_id, request.json()), status=201,
              message="Document uploaded")


@endpoint(bp, "/documents/uploads", "POST", scope="write", status=201, tag=TAG,
          summary="A presigned URL to PUT a larger document to")
def presign_upload(request: ApiRequest):
    return ok(document_service().presign(request.account_id, request.json()), status=201)


@endpoint(bp, "/documents/{document_id}", "GET", scope="read", tag=TAG,
          summary="A document's record, with a download URL once it is stored")
def get_document(request: ApiRequest, document_id: str):
    return ok(document_service().get(request.account_id, document_id))


@endpoint(bp, "/extraction-schemas", "POST", scope="write", status=201, tag=TAG,
          summary="Create an extraction schema for document.extract")
def create_extraction_schema(request: ApiRequest):
    return ok(extraction_schemas().create(request.account_id, request.json()), status=201,
              message="Extraction schema created")


@endpoint(bp, "/extraction-schemas", "GET", scope="read", tag=TAG, summary="List extraction schemas")
def list_extraction_schemas(request: ApiRequest):
    items, meta = paginate(extraction_schemas().list(request.account_id), PageRequest.from_query(request.query))
    return ok(items, meta=meta)


@endpoint(bp, "/extraction-schemas/{schema_id}", "GET", scope="read", tag=TAG, summary="Get an extraction schema")
def get_extraction_schema(request: ApiRequest, schema_id: str):
    return ok(extraction_schemas().get(request.account_id, schema_id))


@endpoint(bp, "/extraction-schemas/{schema_id}", "PUT", scope="write", tag=TAG, summary="Replace an extraction schema")
def replace_extraction_schema(request: ApiRequest, schema_id: str):
    return ok(extraction_schemas().replace(request.account_id, schema_id, request.json()),
              message="Extraction schema updated")


@endpoint(bp, "/extraction-schemas/{schema_id}", "DELETE", scope="write", tag=TAG, summary="Delete an extraction schema")
def delete_extraction_schema(request: ApiRequest, schema_id: str):
    extraction_schemas().delete(request.account_id, schema_id)
    return ok({"id": schema_id, "deleted": True}, message="Extraction schema deleted")
