"""The built-in workflow templates (SPEC §8): at least one per category, among them the
source documents' own examples. Each names the integrations it needs by name (`slack`,
`email`, `crm`, `pagerduty`, `jira`); a traffic trigger ships disabled until it is given
a bucket (`bucket_id` of `POST /api/v1/workflows/from-template`)."""

from __future__ import annotations

from typing import Any

from chalicelib.ids import derived_id

CATEGORIES = ("invoice", "contract", "resume", "general", "alerting", "incident", "approval", "data", "feedback")


def _needs(*names: str) -> list[dict[str, Any]]:
    return [{"id": name, "required": True} for name in names]


def _slack(text: str, name: str = "notify", **step: Any) -> dict[str, Any]:
    return {"name": name, "action": "slack.post_message", "integration": "slack", "input": {"text": text}, **step}


INVOICE_FIELDS = [
    {"name": "invoice_number", "type": "string", "pattern": r"Invoice (?:Number|No\.?|#)\s*:?\s*([A-Z0-9-]+)",
     "required": True},
    {"name": "vendor", "type": "string", "keywords": ["Vendor", "From"]},
    {"name": "invoice_date", "type": "date", "keywords": ["Invoice Date", "Date"]},
    {"name": "due_date", "type": "date", "keywords": ["Due Date", "Payment Due"]},
    {"name": "total", "type": "money", "keywords": ["Total Due", "Amount Due", "Total"], "required": True},
]
CONTRACT_FIELDS = [
    {"name": "parties", "type": "string", "keywords": ["between", "Parties"], "required": True},
    {"name": "effective_date", "type": "date", "keywords": ["Effective Date", "effective as of"]},
    {"name": "term_end", "type": "date", "keywords": ["Expiration Date", "terminates on", "End Date"]},
    {"name": "value", "type": "money", "keywords": ["Contract Value", "Total Value", "Fee"]},
    {"name": "governing_law", "type": "string", "keywords": ["Governing Law", "governed by the laws of"]},
]
RESUME_FIELDS = [
    {"name": "name", "type": "string", "keywords": ["Name"], "required": True},
    {"name": "email", "type": "string", "pattern": r"[\w.+-]+@[\w-]+\.[\w.]+", "required": True},
    {"name": "phone", "type": "string", "pattern": r"\+?\d[\d\s().-]{7,}\d"},
    {"name": "years_experience", "type": "number", "pattern": r"(\d+)\+?\s+years"},
    {"name": "skills", "type": "string", "keywords": ["Skills"]},
]

_TEMPLATES: list[dict[str, Any]] = [
    {
        "slug": "high-error-rate-alert", "category": "alerting", "name": "High Error Rate Alert",
        "description": "Posts to Slack when a bucket's error rate is over 10% for 5 minutes (ApiTraffic).",
        "workflow": {
            "type": "notification", "tags": ["alerting", "api-traffic"], "integrations": _needs("slack"),
            "triggers": [{"type": "threshold", "enabled": False, "cooldown": "15m", "conditions": [
                {"metric": "error_rate", "operator": "greater_than", "value": 10, "time_window": "5m"}]}],
            "definition": {"steps": [_slack("🚨 Error rate is {{ metric.value }}% in {{ bucket.name }}")]},
        },
    },
    {
        "slug": "slow-response-alert", "category": "alerting", "name": "Slow Response Alert",
        "description": "Emails when a bucket's average response time is over 2 s for 10 minutes (ApiTraffic).",
        "workflow": {
            "type": "notification", "tags": ["alerting", "api-traffic"], "integrations": _needs("email"),
            "triggers": [{"type": "threshold", "enabled": False, "conditions": [
                {"metric": "avg_response_time", "operator": "greater_than", "value": 2000, "time_window": "10m"}]}],
            "definition": {"steps": [{"name": "email", "action": "email.send", "integration": "email", "input": {
                "subject": "Slow API Performance Alert",
                "body": "Average response time is {{ metric.value }}ms in {{ bucket.name }}"}}]},
        },
    },
    {
        "slug": "new-user-registration", "category": "general", "name": "New User Registration",
        "description": "Sends each new user (POST /api/users answered 201) to a CRM webhook (ApiTraffic).",
        "workflow": {
            "type": "integration", "tags": ["api-traffic", "crm"], "integrations": _needs("crm"),
            "triggers": [{"type": "request", "enabled": False, "conditions": [
                {"path": "/api/users", "method": "POST", "status_code": 201}]}],
            "definition": {"steps": [{"name": "crm", "action": "webhook.send", "integration": "crm", "input": {
                "method": "POST", "body": {"event": "user_registered", "user_data": "{{ request.body }}"}}}]},
        },
    },
    {
        "slug": "daily-summary-report", "category": "general", "name": "Daily Summary Report",
        "description": "Emails a daily summary at 09:00 (ApiTraffic).",
        "workflow": {
            "type": "reporting", "tags": ["report"], "integrations": _needs("email"),
            "triggers": [{"type": "schedule", "name": "daily", "cron_expression": "0 9 * * *"}],
            "definition": {"steps": [{"name": "email", "action": "email.send", "integration": "email", "input": {
                "subject": "Daily API Summary{% if bucket is defined %} for {{ bucket.name }}{% endif %}",
                "body": "Your daily API traffic summary is ready."}}]},
        },
    },
    {
        "slug": "incident-response", "category": "incident", "name": "Incident Response",
        "description": "Pages on-call through PagerDuty, opens a Jira issue (the jira integration gives "
                       "base_url, credentials and project_key) and tells Slack; a Jira failure still lets the "
                       "Slack message go out.",
        "workflow": {
            "type": "incident_response", "tags": ["incident"], "integrations": _needs("pagerduty", "jira", "slack"),
            "param_schema": {"type": "object", "properties": {
                "summary": {"type": "string"}, "severity": {"enum": ["critical", "error", "warning", "info"]},
                "service": {"type": "string"}}, "required": ["summary"]},
            "definition": {"steps": [
                {"name": "page", "action": "pagerduty.create_incident", "integration": "pagerduty",
                 "retry": {"max_attempts": 3, "initial_interval": 2}, "on_success": "ticket",
                 "input": {"summary": "{{ params.summary }}", "severity": "{{ params.severity | default('error') }}",
                           "source": "{{ params.service | default('sluice') }}"}},
                {"name": "ticket", "action": "jira.create_issue", "integration": "jira", "on_complete": "notify",
                 "input": {"summary": "Incident: {{ params.summary }}", "issue_type": "Bug",
                           "description": "Severity {{ params.severity | default('error') }}"}},
                _slack("🚨 {{ params.summary }} (PagerDuty: {{ steps.page.output.dedup_key }}"
                       "{% if steps.ticket.output %}, Jira: {{ steps.ticket.output.key }}{% endif %})"),
            ]},
        },
    },
    {
        "slug": "approval-request", "category": "approval", "name": "Approval Request",
        "description": "Asks a person to approve a request, then tells Slack what was decided.",
        "workflow": {
            "type": "approval", "tags": ["approval"], "integrations": _needs("slack"),
            "param_schema": {"type": "object", "properties": {
                "request": {"type": "string"}, "requester": {"type": "string"}}, "required": ["request"]},
            "definition": {"steps": [
                {"name": "decide", "action": "core.inquiry", "input": {
                    "message": "Approve: {{ params.request }}?", "timeout": 86400,
                    "schema": {"type": "object", "properties": {"note": {"type": "string"}}}}},
                _slack("✅ Approved: {{ params.request }}{% if steps.decide.output.note %} "
                       "({{ steps.decide.output.note }}){% endif %}"),
            ]},
        },
    },
    {
        "slug": "data-pipeline", "category": "data", "name": "Data Pipeline",
        "description": "Fetches JSON from an API, keeps the records that match, and posts them on.",
        "workflow": {
            "type": "data_processing", "tags": ["data", "etl"], "integrations": _needs("crm"),
            "param_schema": {"type": "object", "properties": {
                "source_url": {"type": "string"}, "expression": {"type": "string"}}, "required": ["source_url"]},
            "definition": {"steps": [
                {"name": "fetch", "action": "core.http", "retry": {"max_attempts": 3, "initial_interval": 1},
                 "input": {"url": "{{ params.source_url }}"}},
                {"name": "transform", "action": "core.transform", "input": {
                    "data": "{{ steps.fetch.output.body }}",
                    "expression": "{{ params.expression | default('[?active].{id: id, name: name}') }}"}},
                {"name": "load", "action": "webhook.send", "integration": "crm", "input": {
                    "method": "POST", "body": {"records": "{{ steps.transform.output }}"}}},
            ], "output": {"loaded": "{{ steps.transform.output | length }}"}},
        },
    },
    {
        "slug": "invoice-processing", "category": "invoice", "name": "Invoice Processing",
        "description": "When a PDF invoice is uploaded: parse it, extract its fields, tell Slack (doc platform).",
        "workflow": {
            "type": "document_processing", "tags": ["invoice", "documents"], "integrations": _needs("slack"),
            "triggers": [{"type": "event", "event": "document.uploaded", "filters": {"file_type": "pdf"}}],
            "definition": {"steps": [
                {"name": "parse", "action": "document.parse", "input": {"document_id": "{{ trigger.data.document_id }}"}},
                {"name": "extract", "action": "document.extract",
                 "input": {"text": "{{ steps.parse.output.text }}", "schema": {"fields": INVOICE_FIELDS}}},
                _slack("Invoice processed: {{ steps.extract.output.fields.invoice_number }} for "
                       "{{ steps.extract.output.fields.total.amount }} {{ steps.extract.output.fields.total.currency }}"
                       "{% if steps.extract.output.missing %} (missing: "
                       "{{ steps.extract.output.missing | join(', ') }}){% endif %}"),
            ], "output": "{{ steps.extract.output }}"},
        },
    },
    {
        "slug": "contract-review", "category": "contract", "name": "Contract Review",
        "description": "When a contract is uploaded: extract parties, dates and value; flag large ones to Slack.",
        "workflow": {
            "type": "document_processing", "tags": ["contract", "documents"], "integrations": _needs("slack"),
            "configuration": {"review_threshold": 50000},
            "triggers": [{"type": "event", "event": "document.uploaded",
                          "filters": {"file_name": {"~contains": "contract"}}}],
            "definition": {"steps": [
                {"name": "parse", "action": "document.parse", "on_success": "extract",
                 "input": {"document_id": "{{ trigger.data.document_id }}"}},
                {"name": "extract", "action": "document.extract",
                 "input": {"text": "{{ steps.parse.output.text }}", "schema": {"fields": CONTRACT_FIELDS}},
                 "on_success": "large"},
                {"name": "large", "action": "core.condition", "on_true": "flag",
                 "input": {"condition": "{{ steps.extract.output.fields.value is not none and "
                                        "steps.extract.output.fields.value.amount >= "
                                        "workflow.configuration.review_threshold }}"}},
                _slack("📄 Contract needs review: {{ steps.extract.output.fields.parties }}, value "
                       "{{ steps.extract.output.fields.value.amount }}", name="flag"),
            ], "output": "{{ steps.extract.output }}"},
        },
    },
    {
        "slug": "resume-screening", "category": "resume", "name": "Resume Screening",
        "description": "When a resume is uploaded: extract the candidate's details; tell Slack of experienced ones.",
        "workflow": {
            "type": "document_processing", "tags": ["resume", "hiring"], "integrations": _needs("slack"),
            "configuration": {"min_years": 3},
            "triggers": [{"type": "event", "event": "document.uploaded",
                          "filters": {"file_name": {"~contains": "resume"}}}],
            "definition": {"steps": [
                {"name": "parse", "action": "document.parse", "on_success": "extract",
                 "input": {"document_id": "{{ trigger.data.document_id }}"}},
                {"name": "extract", "action": "document.extract",
                 "input": {"text": "{{ steps.parse.output.text }}", "schema": {"fields": RESUME_FIELDS}},
                 "on_success": "qualified"},
                {"name": "qualified", "action": "core.condition", "on_true": "notify",
                 "input": {"condition": "{{ (steps.extract.output.fields.years_experience or 0) >= "
                                        "workflow.configuration.min_years }}"}},
                _slack("👤 {{ steps.extract.output.fields.name }} ({{ steps.extract.output.fields.email }}), "
                       "{{ steps.extract.output.fields.years_experience }} years"),
            ], "output": "{{ steps.extract.output }}"},
        },
    },
    {
        "slug": "customer-feedback-analysis", "category": "feedback", "name": "Customer Feedback Analysis",
        "description": "Scores a piece of feedback (sentiment), finds its topics, recommends what to do and "
                       "posts negative feedback to Slack.",
        "workflow": {
            "type": "feedback_analysis", "tags": ["feedback", "nlp"], "integrations": _needs("slack"),
            "configuration": {"sentiment_analysis": True, "topic_extraction": True, "language": "en"},
            "param_schema": {"type": "object", "properties": {
                "feedback": {"type": "string"}, "customer": {"type": "string"}}, "required": ["feedback"]},
            "definition": {"steps": [
                {"name": "sentiment", "action": "text.sentiment", "input": {"text": "{{ params.feedback }}"},
                 "on_success": "topics"},
                {"name": "topics", "action": "text.topics", "input": {"text": "{{ params.feedback }}", "max_topics": 3},
                 "on_success": "recommendations"},
                {"name": "recommendations", "action": "core.transform", "on_success": "negative", "input": {"data": {
                    "priority": "{{ 'high' if steps.sentiment.output.label == 'negative' else "
                                "('medium' if steps.sentiment.output.label == 'mixed' else 'low') }}",
                    "actions": "{% if steps.sentiment.output.label in ('negative', 'mixed') %}"
                               "{% for topic in steps.topics.output.topics %}Follow up on {{ topic }}"
                               "{% if not loop.last %}; {% endif %}{% endfor %}"
                               "{% else %}Thank the customer{% endif %}"}}},
                {"name": "negative", "action": "core.condition", "on_true": "notify",
                 "input": {"condition": "{{ steps.sentiment.output.label in ('negative', 'mixed') }}"}},
                _slack("⚠️ {{ steps.sentiment.output.label }} feedback{% if params.customer %} from "
                       "{{ params.customer }}{% endif %}: {{ steps.topics.output.topics | join(', ') }}"),
            ], "output": {"sentiment": "{{ steps.sentiment.output }}", "topics": "{{ steps.topics.output.topics }}",
                          "recommendations": "{{ steps.recommendations.output }}"}},
        },
    },
]


def built_in() -> list[dict[str, Any]]:
    """The built-in templates as the API shows them."""
    return [{"id": derived_id("tpl", f"builtin:{t['slug']}"), "name": t["name"], "description": t["description"],
             "category": t["category"], "built_in": True,
             "integrations": [i["id"] for i in t["workflow"].get("integrations", [])],
             "workflow": dict(t["workflow"], name=t["name"], description=t["description"])}
            for t in _TEMPLATES]
