"""The Web Push channel's table, `[apps.<app_id>.webpush]`: the VAPID key and the push services a subscription may name."""

from __future__ import annotations

from pydantic import Field, model_validator

from pushsvc.sections import Names, OptionalPath, Section

WEBPUSH_PUSH_SERVICES = (
    "fcm.googleapis.com",
    "updates.push.services.mozilla.com",
    "*.push.apple.com",
    "*.notify.windows.com",
)
"""The browsers' push services: Chrome and Edge on Android (FCM), Firefox, Safari, Edge on Windows."""


class WebPushAppSettings(Section):
    """One app's Web Push (VAPID) credentials: `[apps.<app_id>.webpush]`."""

    vapid_private_key_file: OptionalPath = None
    """The VAPID key: PEM EC P-256, or the base64url private key `pushsvc webpush keys` prints; or vapid_private_key_env."""
    vapid_private_key_env: str = ""
    """An environment variable holding the VAPID private key, instead of vapid_private_key_file."""
    subject: str = Field(pattern=r"^(mailto:[^\s<>]+@[^\s<>]+|https://\S+)$")
    """The VAPID `sub`: a mailto: or https: contact for the push services' operators."""
    allowed_hosts: Names = WEBPUSH_PUSH_SERVICES
    """Push-service hosts a subscription's endpoint may name (`*.example.com` for subdomains): a subscription is caller input."""
    default_ttl_s: int = Field(default=2_419_200, ge=0)
    """The TTL header when a message sets no ttl (4 weeks)."""
    ca_file: OptionalPath = None
    """Extra CA to trust (the emulator's); unset means the system store."""

    @model_validator(mode="after")
    def _one_key(self) -> WebPushAppSettings:
        if bool(self.vapid_private_key_file) == bool(self.vapid_private_key_env):
            raise ValueError("set exactly one of vapid_private_key_file, vapid_private_key_env")
        return self
