"""The delivery pipeline: claim, fan out, classify, record.

`dispatcher` runs leased partitions (claim, renew, batches, checkpoints,
drain); `delivery` delivers one batch with the retry and expiry policy;
`retry` is that policy's backoff; `planning` cuts a fan-out into partitions.
"""

from pushsvc.dispatch.dispatcher import Dispatcher, DispatcherDrain
from pushsvc.dispatch.retry import RetryPolicy

__all__ = ["Dispatcher", "DispatcherDrain", "RetryPolicy"]
