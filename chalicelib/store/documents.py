"""Documents, extraction schemas and saved templates (the bytes of a document are in the
payload bucket)."""

from __future__ import annotations

from chalicelib.store.items import AccountItems
from chalicelib.store.models import AccountItemModel


class DocumentRepository(AccountItems):
    model = AccountItemModel
    prefix = "doc"


class ExtractionSchemaRepository(AccountItems):
    model = AccountItemModel
    prefix = "xsc"


class TemplateRepository(AccountItems):
    model = AccountItemModel
    prefix = "tpl"
