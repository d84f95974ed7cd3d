"""Documents (SPEC §5): stored in the payload bucket under `documents/<account>/<id>/`,
uploaded inline (≤ 5 MB) or through a presigned URL; storing one is a
`document.uploaded` event. And extraction schemas for `document.extract`."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from chalicelib.errors import NotFoundError, PayloadTooLargeError, ValidationError, detail
from chalicelib.ids import derived_id, is_id, new_id, now_iso

INLINE_MAX = 5 * 1024 * 1024
UPLOAD_URL_SECONDS = 900
FILENAME_MAX = 255


class DocumentNotFoundError(NotFoundError):
    def __init__(self, document_id: str) -> None:
        super().__init__(f"no document '{document_id}'", [detail("id", document_id)])


def document_key(account_id: str, document_id: str, filename: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", filename).strip("._") or "document"
    return f"documents/{account_id}/{document_id}/{safe}"


def uploaded_event_id(bucket: str, key: str) -> str:
    """The same for the API's event and for S3's notification of the same object, so that
    the two start a trigger once."""
    return derived_id("evt", f"document.uploaded:{bucket}/{key}")


def event_data(record: dict[str, Any]) -> dict[str, Any]:
    """A document.uploaded event's data."""
    filename = record["filename"]
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else None
    return {"document_id": record["id"], "bucket": record["bucket"], "key": record["key"], "file_name": filename,
            "file_type": extension, "size": record.get("size"), "content_type": record.get("content_type"),
            "knowledge_base_id": record.get("knowledge_base_id")}


def _common(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError.for_field("body", "must be a JSON object")
    filename = body.get("filename")
    if not isinstance(filename, str) or not filename.strip() or len(filename) > FILENAME_MAX or "/" in filename:
        raise ValidationError.for_field("filename", f"is required: a file name of at most {FILENAME_MAX} characters")
    content_type = body.get("content_type", "application/octet-stream")
    if not isinstance(content_type, str) or "/" not in content_type:
        raise ValidationError.for_field("content_type", "must be a media type such as application/pdf")
    knowledge_base = body.get("knowledge_base_id")
    if knowledge_base is not None and not isinstance(knowledge_base, str):
        raise ValidationError.for_field("knowledge_base_id", "must be a string")
    return {"filename": filename, "content_type": content_type, "knowledge_base_id": knowledge_base}


class DocumentService:
    def __init__(self, repository: Any, s3: Any, bucket: str, emit: Any) -> None:
        self.repository = repository
        self.s3 = s3
        self.bucket = bucket
        self.emit = emit  # (account, type, data, event_id) -> None

    def _record(self, account_id: str, fields: dict[str, Any], status: str, size: int | None) -> dict[str, Any]:
        document_id = new_id("doc")
        return {"id": document_id, **fields, "size": size, "status": status, "bucket": self.bucket,
                "key": document_key(account_id, document_id, fields["filename"]), "created_at": now_iso()}

    def upload(self, account_id: str, body: Any) -> dict[str, Any]:
        fields = _common(body)
        raw = body.get("content_base64")
        if not isinstance(raw, str):
            raise ValidationError.for_field("content_base64", "is required: the document's bytes in base64")
        if len(raw) > INLINE_MAX * 4 // 3 + 4:
            raise PayloadTooLargeError("the document is over 5 MB: use POST /api/v1/documents/uploads")
        try:
            content = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError.for_field("content_base64", "is not valid base64") from None
        if len(content) > INLINE_MAX:
            raise PayloadTooLargeError("the document is over 5 MB: use POST /api/v1/documents/uploads")
        record = self._record(account_id, fields, "uploaded", len(content))
        self.repository.put(account_id, record, new=True)
        self.s3.put_object(Bucket=self.bucket, Key=record["key"], Body=content, ContentType=fields["content_type"])
        self.emit(account_id, "document.uploaded", event_data(record), uploaded_event_id(self.bucket, record["key"]))
        return record

    def presign(self, account_id: str, body: Any) -> dict[str, Any]:
        """A URL to PUT the document to (for documents over 5 MB); its arrival in the
        bucket is the `document.uploaded` event."""
        fields = _common(body)
        record = self._record(account_id, fields, "pending", None)
        self.repository.put(account_id, record, new=True)
        url = self.s3.generate_presigned_url(
            "put_object", Params={"Bucket": self.bucket, "Key": record["key"], "ContentType": fields["content_type"]},
            ExpiresIn=UPLOAD_URL_SECONDS)
        return {"document_id": record["id"], "upload_url": url, "method": "PUT",
                "headers": {"Content-Type": fields["content_type"]}, "expires_in": UPLOAD_URL_SECONDS}

    def get(self, account_id: str, document_id: str) -> dict[str, Any]:
        record = self.repository.get(account_id, document_id) if is_id(document_id, "doc") else None
        if record is None:
            raise DocumentNotFoundError(document_id)
        if record["status"] == "uploaded":
            record = dict(record, download_url=self.s3.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": record["key"]}, ExpiresIn=UPLOAD_URL_SECONDS))
        return record

    def arrived(self, account_id: str, document_id: str, size: int | None) -> dict[str, Any] | None:
        """An object of a presigned upload arrived: the record says so."""
        record = self.repository.get(account_id, document_id)
        if record is None:
            return None
        if record["status"] != "uploaded":
            record = dict(record, status="uploaded", size=size)
            self.repository.put(account_id, record)
        return record


class ExtractionSchemas:
    FIELDS = ("name", "description", "fields")

    def __init__(self, repository: Any) -> None:
        self.repository = repository

    def find(self, account_id: str, ref: str) -> dict[str, Any] | None:
        """By id or by name (the source documents name them: `invoice-schema`)."""
        if is_id(ref, "xsc"):
            return self.repository.get(account_id, ref)
        return next((s for s in self.list(account_id) if s["name"] == ref), None)

    def _fields(self, body: Any) -> dict[str, Any]:
        from chalicelib.documents import schema_problems

        if not isinstance(body, dict):
            raise ValidationError.for_field("body", "must be a JSON object")
        name = body.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise ValidationError.for_field("name", "is required: a string of at most 200 characters")
        problems = schema_problems({"fields": body.get("fields")}, "")
        if problems:
            details = [detail(field.lstrip("."), message) for field, message in problems]
            raise ValidationError(f"{details[0]['field']}: {details[0]['message']}", details)
        description = body.get("description")
        if description is not None and not isinstance(description, str):
            raise ValidationError.for_field("description", "must be a string")
        return {"name": name, "description": description, "fields": body["fields"]}

    def get(self, account_id: str, schema_id: str) -> dict[str, Any]:
        found = self.repository.get(account_id, schema_id) if is_id(schema_id, "xsc") else None
        if found is None:
            raise NotFoundError(f"no extraction schema '{schema_id}'", [detail("id", schema_id)])
        return found

    def list(self, account_id: str) -> list[dict[str, Any]]:
        return sorted(self.repository.list(account_id), key=lambda s: (s["created_at"], s["id"]))

    def create(self, account_id: str, body: Any) -> dict[str, Any]:
        now = now_iso()
        document = {"id": new_id("xsc"), **self._fields(body), "created_at": now, "updated_at": now}
        self.repository.put(account_id, document, new=True)
        return document

    def replace(self, account_id: str, schema_id: str, body: Any) -> dict[str, Any]:
        current = self.get(account_id, schema_id)
        document = dict(current, **self._fields(body), updated_at=now_iso())
        if not self.repository.put(account_id, document, new=False):
            raise NotFoundError(f"no extraction schema '{schema_id}'", [detail("id", schema_id)])
        return document

    def delete(self, account_id: str, schema_id: str) -> None:
        self.get(account_id, schema_id)
        self.repository.delete(account_id, schema_id)
