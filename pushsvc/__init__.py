"""pushsvc: a self-hosted push-notification gateway (gRPC in, APNs and FCM out)."""

__version__ = "0.1.0"
__all__ = ["__version__"]
