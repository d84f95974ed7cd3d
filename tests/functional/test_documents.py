"""Documents and the content actions (SPEC §5): upload (inline and presigned), the
document.uploaded event, document.parse for every kind, document.extract with inline and
stored schemas, text.sentiment and text.topics."""

import base64
import json

import pytest
import requests

from tests.functional.conftest import create_workflow, execute, wait_for

INVOICE = """ACME Corp
Invoice Number: INV-2026-0042
Invoice Date: March 5, 2026
Due Date: 2026-04-04
Total Due: $1,234.50
"""
INVOICE_SCHEMA = {"fields": [
    {"name": "invoice_number", "type": "string", "pattern": r"Invoice Number:\s*(\S+)", "required": True},
    {"name": "invoice_date", "type": "date", "keywords": ["Invoice Date"]},
    {"name": "due_date", "type": "date"},
    {"name": "total", "type": "money", "keywords": ["Total Due"], "required": True},
    {"name": "po_number", "type": "string", "keywords": ["PO Number"]},
]}


def pdf(text: str) -> bytes:
    """A one-page PDF whose page shows `text` (each line a text line)."""
    lines = "".join(f"({line}) Tj 0 -16 Td " for line in text.splitlines())
    stream = f"BT /F1 12 Tf 72 720 Td {lines}ET".encode()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def upload(api, filename, content: bytes, content_type, **more):
    reply = api.post("/api/v1/documents", {"filename": filename, "content_type": content_type,
                                           "content_base64": base64.b64encode(content).decode(), **more})
    assert reply.status == 201, reply.body
    return reply.data


def run_step(api, action, input, **step):
    wf = create_workflow(api, {"steps": [{"name": "act", "action": action, "input": input, **step}]}, name=action)
    reply = execute(api, wf)
    assert reply.status == 200, reply.body
    return reply.data["steps"][0]


@pytest.mark.parametrize(("filename", "content_type", "content", "text", "metadata"), [
    ("invoice.pdf", "application/pdf", pdf("Invoice Number: INV-7\nTotal Due: $10.00"),
     "Invoice Number: INV-7\nTotal Due: $10.00", {}),
    ("notes.txt", "text/plain", "héllo\nworld\n".encode(), "héllo\nworld", {}),
    ("rows.csv", "text/csv", b"name,score\nada,3\nbob,5\n", "name,score\nada,3\nbob,5",
     {"columns": ["name", "score"], "rows": 2, "records": [{"name": "ada", "score": "3"}, {"name": "bob", "score": "5"}]}),
    ("page.html", "text/html", b"<html><head><title>T</title><script>x()</script></head><body><p>One</p><p>Two</p>"
     b"</body></html>", "One\n\nTwo", {"title": "T"}),
])
def test_document_parse_reads_every_kind(api, workers, filename, content_type, content, text, metadata):
    document = upload(api, filename, content, content_type)
    step = run_step(api, "document.parse", {"document_id": document["id"]})
    assert step["status"] == "succeeded", step["error"]
    output = step["output"]
    assert output["text"] == text
    assert output["content_type"] == content_type and output["pages"] == 1
    assert {k: output["metadata"][k] for k in metadata} == metadata
    assert output["metadata"]["document_id"] == document["id"] and output["metadata"]["size"] == len(content)


def test_json_documents_and_their_data(api, workers):
    document = upload(api, "order.json", json.dumps({"id": 7, "items": [1, 2]}).encode(), "application/json")
    output = run_step(api, "document.parse", {"document_id": document["id"]})["output"]
    assert output["metadata"]["json"] == {"id": 7, "items": [1, 2]} and output["metadata"]["keys"] == ["id", "items"]


def test_documents_are_kept_per_account(api, workers, tenant, chalice_client):
    from tests.functional.conftest import new_tenant

    theirs = upload(new_tenant(chalice_client, "other").api, "secret.txt", b"theirs", "text/plain")
    assert run_step(api, "document.parse", {"document_id": theirs["id"]})["error"]["code"] == "DOCUMENT_NOT_FOUND"
    blocked = run_step(api, "document.parse", {"bucket": theirs["bucket"], "key": theirs["key"]})
    assert blocked["error"]["code"] == "BLOCKED_DESTINATION"
    assert api.get(f"/api/v1/documents/{theirs['id']}").status == 404


def test_upload_checks(api, workers):
    for body, field in [({"content_base64": "eA=="}, "filename"), ({"filename": "a.txt"}, "content_base64"),
                        ({"filename": "a.txt", "content_base64": "%%%"}, "content_base64"),
                        ({"filename": "a/b.txt", "content_base64": "eA=="}, "filename")]:
        reply = api.post("/api/v1/documents", body)
        assert reply.status == 400 and reply.error["details"][0]["field"] == field, body
    big = api.post("/api/v1/documents", {"filename": "big.bin",
                                         "content_base64": base64.b64encode(b"x" * (5 * 1024 * 1024 + 1)).decode()})
    assert big.status == 413


def test_the_invoice_pipeline_parse_extract_notify(api, workers, sink):
    """Seed 002's invoice processing: a PDF uploaded to a knowledge base starts
    parse -> extract (a stored schema, by name) -> notify."""
    schema = api.post("/api/v1/extraction-schemas", {"name": "invoice-schema", **INVOICE_SCHEMA})
    assert schema.status == 201, schema.body
    wf = create_workflow(api, {"steps": [
        {"name": "parse", "action": "document.parse", "input": {"document_id": "{{ trigger.data.document_id }}"}},
        {"name": "extract", "action": "document.extract",
         "input": {"text": "{{ steps.parse.output.text }}", "schema_id": "invoice-schema"}},
        {"name": "notify", "action": "slack.post_message",
         "input": {"webhook_url": sink.url("/invoices"),
                   "text": "Invoice processed: {{ steps.extract.output.fields.invoice_number }} "
                           "({{ steps.extract.output.fields.total.amount }} "
                           "{{ steps.extract.output.fields.total.currency }})"}},
    ]}, name="Invoice Processing", triggers=[{"type": "event", "event": "document.uploaded",
                                              "filters": {"file_type": "pdf", "knowledge_base_id": "kb-1"}}])
    upload(api, "other.pdf", pdf(INVOICE), "application/pdf", knowledge_base_id="kb-2")
    document = upload(api, "march.pdf", pdf(INVOICE), "application/pdf", knowledge_base_id="kb-1")
    [message] = wait_for(lambda: sink.to("/invoices"), timeout=20)
    assert message.json == {"text": "Invoice processed: INV-2026-0042 (1234.5 USD)"}
    [run] = api.get(f"/api/v1/workflows/{wf['id']}/executions").data
    detail = api.get(f"/api/v1/executions/{run['id']}").data
    extracted = next(s for s in detail["steps"] if s["name"] == "extract")["output"]
    assert extracted == {"fields": {"invoice_number": "INV-2026-0042", "invoice_date": "2026-03-05",
                                    "due_date": "2026-04-04", "total": {"amount": 1234.5, "currency": "USD"},
                                    "po_number": None}, "missing": []}
    # S3's own notification of the same object arrives too, and starts nothing more.
    wait_for(lambda: api.get(f"/api/v1/documents/{document['id']}").data["status"] == "uploaded")
    assert len(api.get(f"/api/v1/workflows/{wf['id']}/executions").data) == 1


def test_a_presigned_upload_is_document_uploaded_when_it_arrives(api, workers):
    wf = create_workflow(api, {"steps": [{"name": "see", "action": "core.echo",
                                          "input": {"kb": "{{ trigger.data.knowledge_base_id }}",
                                                    "name": "{{ trigger.data.file_name }}"}}]},
                         name="Big docs", triggers=[{"type": "event", "event": "document.uploaded"}])
    reply = api.post("/api/v1/documents/uploads", {"filename": "big.txt", "content_type": "text/plain",
                                                   "knowledge_base_id": "kb-9"})
    assert reply.status == 201 and reply.data["method"] == "PUT"
    assert api.get(f"/api/v1/documents/{reply.data['document_id']}").data["status"] == "pending"
    put = requests.put(reply.data["upload_url"], data=b"large text", headers=reply.data["headers"])
    assert put.status_code == 200
    [run] = wait_for(lambda: api.get(f"/api/v1/workflows/{wf['id']}/executions").data)
    detail = wait_for(lambda: (d := api.get(f"/api/v1/executions/{run['id']}").data)["status"] == "succeeded" and d)
    assert detail["steps"][0]["output"] == {"kb": "kb-9", "name": "big.txt"}
    stored = api.get(f"/api/v1/documents/{reply.data['document_id']}").data
    assert stored["status"] == "uploaded" and stored["size"] == 10 and stored["download_url"].startswith("https://")


def test_extraction_schemas_crud_and_checks(api, workers):
    created = api.post("/api/v1/extraction-schemas", {"name": "resume", "fields": [
        {"name": "email", "pattern": r"[\w.]+@[\w.]+", "required": True}]}).data
    assert created["id"].startswith("xsc_")
    replaced = api.put(f"/api/v1/extraction-schemas/{created['id']}", {"name": "resume", "fields": [
        {"name": "email", "pattern": r"[\w.]+@[\w.]+"}, {"name": "years", "type": "number", "keywords": ["experience"]}]})
    assert replaced.status == 200 and len(replaced.data["fields"]) == 2
    assert [s["id"] for s in api.get("/api/v1/extraction-schemas").data] == [created["id"]]
    for fields, field in [([], "fields"), ([{"name": "a", "type": "colour"}], "fields[0].type"),
                          ([{"name": "a", "pattern": "("}], "fields[0].pattern"),
                          ([{"name": "a"}, {"name": "a"}], "fields[1].name")]:
        reply = api.post("/api/v1/extraction-schemas", {"name": "x", "fields": fields})
        assert reply.status == 400 and reply.error["details"][0]["field"] == field, fields
    assert api.delete(f"/api/v1/extraction-schemas/{created['id']}").status == 200
    assert api.get(f"/api/v1/extraction-schemas/{created['id']}").status == 404


def test_extract_reports_missing_required_fields(api, workers):
    step = run_step(api, "document.extract", {"text": "Total Due: 12", "schema": INVOICE_SCHEMA})
    assert step["output"]["missing"] == ["invoice_number"] and step["output"]["fields"]["total"] == {
        "amount": 12.0, "currency": None}
    unknown = run_step(api, "document.extract", {"text": "x", "schema_id": "nope"})
    assert unknown["error"]["code"] == "INVALID_INPUT"


@pytest.mark.parametrize(("text", "label"), [
    ("I love this product, the support team was fantastic!", "positive"),
    ("Terrible experience. The app crashes and nobody answers.", "negative"),
    ("The package arrived on Tuesday.", "neutral"),
    ("The product is great but the delivery was terrible.", "mixed"),
])
def test_sentiment(api, workers, text, label):
    output = run_step(api, "text.sentiment", {"text": text})["output"]
    assert output["label"] == label and -1 <= output["score"] <= 1


def test_topics(api, workers):
    text = ("The checkout page is slow and the shipping costs are too high. Shipping took two weeks. "
            "The checkout page froze twice. Customer support was helpful.")
    output = run_step(api, "text.topics", {"text": text, "max_topics": 3})["output"]
    assert output["topics"][0] == "checkout page" and len(output["topics"]) == 3
    assert "shipping" in " ".join(output["topics"])
