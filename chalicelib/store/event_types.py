"""Custom event types an account registers (SPEC §6.3), keyed by name."""

from __future__ import annotations

from chalicelib.store.items import AccountItems
from chalicelib.store.models import AccountItemModel


class EventTypeRepository(AccountItems):
    model = AccountItemModel
    prefix = "evtype"
    key_field = "name"
