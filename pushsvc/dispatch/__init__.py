"""The delivery pipeline: claim, fan out, classify, record."""

from pushsvc.dispatch.dispatcher import Dispatcher, DispatcherDrain
from pushsvc.dispatch.retry import RetryPolicy

__all__ = ["Dispatcher", "DispatcherDrain", "RetryPolicy"]
