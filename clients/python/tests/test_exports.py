"""pushsvc_client's public names, snapshotted: an export added, renamed or dropped by accident fails here.

A deliberate change updates EXPORTS in the same commit, so the review sees it.
The public names of a module are `__all__` where it has one, else the names not
starting with `_` that the module itself defines (imports excluded). The
generated `pushsvc_client.v1` follows protos/ and is not listed.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pushsvc_client

EXPORTS: dict[str, list[str]] = {
    "pushsvc_client": [
        "AsyncReceiptStream", "DEFAULT_DEADLINE_S", "IDEMPOTENT_METHODS", "ReceiptStream", "channel_options", "connect",
        "connect_aio", "credential_metadata", "default_service_config",
    ],
    "pushsvc_client.channel": [
        "DEFAULT_DEADLINE_S", "IDEMPOTENT_METHODS", "SERVICE", "channel_options", "connect", "connect_aio",
        "credential_metadata", "default_service_config",
    ],
    "pushsvc_client.cli": ["DEFAULT_SERVER", "UsageError", "main"],
    "pushsvc_client.importer": ["MAX_BATCH_BYTES", "MAX_BATCH_ITEMS", "Summary", "TokenImporter"],
    "pushsvc_client.progress": ["BAR_FORMAT", "BarProgress", "LineProgress", "NoProgress", "count_lines"],
    "pushsvc_client.receipts": ["AsyncReceiptStream", "DEFAULT_RESUME_TIMEOUT_S", "ReceiptStream"],
    "pushsvc_client.tokenfile": [
        "COLUMNS", "FORMATS", "FileError", "REQUIRED", "Record", "Row", "RowError", "TOPIC_SEPARATOR", "TokenFile",
        "detect_format",
    ],
}


def _public(module: ModuleType) -> list[str]:
    exported = getattr(module, "__all__", None)
    if exported is not None:
        return sorted(exported)
    return sorted(
        name for name, value in vars(module).items()
        if not name.startswith("_") and not inspect.ismodule(value)
        and getattr(value, "__module__", module.__name__) == module.__name__
    )


def test_the_public_modules_are_the_snapshotted_ones() -> None:
    found = {"pushsvc_client"} | {
        f"pushsvc_client.{m.name}" for m in pkgutil.iter_modules(pushsvc_client.__path__)
        if not m.name.startswith("_") and m.name != "v1"
    }
    assert sorted(found) == sorted(EXPORTS)


def test_each_module_exports_the_snapshotted_names() -> None:
    actual = {name: _public(importlib.import_module(name)) for name in EXPORTS}
    assert actual == {name: sorted(names) for name, names in EXPORTS.items()}


def test_every_name_in_all_is_there() -> None:
    for name in pushsvc_client.__all__:
        assert hasattr(pushsvc_client, name), name
