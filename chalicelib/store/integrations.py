"""Integrations (SPEC §8): items of the account's partition of the workflows table."""

from __future__ import annotations

from chalicelib.store.items import AccountItems
from chalicelib.store.models import AccountItemModel


class IntegrationRepository(AccountItems):
    model = AccountItemModel
    prefix = "int"
