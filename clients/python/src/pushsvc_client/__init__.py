"""pushsvc's Python client: generated stubs (`pushsvc_client.v1`), a channel
helper with TLS, credentials, retries and deadlines, and receipt streams that
resume from the last cursor."""

from pushsvc_client.channel import (
    DEFAULT_DEADLINE_S,
    IDEMPOTENT_METHODS,
    channel_options,
    connect,
    connect_aio,
    credential_metadata,
    default_service_config,
)
from pushsvc_client.receipts import AsyncReceiptStream, ReceiptStream

__all__ = [
    "DEFAULT_DEADLINE_S",
    "IDEMPOTENT_METHODS",
    "AsyncReceiptStream",
    "ReceiptStream",
    "channel_options",
    "connect",
    "connect_aio",
    "credential_metadata",
    "default_service_config",
]
