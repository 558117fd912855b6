"""The HMS channel's table, `[apps.<app_id>.hms]`: the OAuth client and the Push Kit project."""

from __future__ import annotations

from pydantic import Field, model_validator

from pushsvc.sections import OptionalPath, Section


class HmsAppSettings(Section):
    """One app's Huawei Push Kit credentials (OAuth client credentials): `[apps.<app_id>.hms]`."""

    client_id: str = Field(pattern=r"^[0-9]{1,64}$")
    """The app's OAuth client id (AppGallery Connect: the app id)."""
    client_secret_file: OptionalPath = None
    """The OAuth client secret; or client_secret_env."""
    client_secret_env: str = ""
    """An environment variable holding the client secret, instead of client_secret_file."""
    project_id: str = Field(min_length=1)
    """The AppGallery Connect project id: the v2 send API's `/v2/<project_id>/messages:send`."""
    base_url: str = "https://push-api.cloud.huawei.com"
    """Push Kit's endpoint."""
    token_url: str = "https://oauth-login.cloud.huawei.com/oauth2/v3/token"
    """Huawei's OAuth token endpoint."""
    ca_file: OptionalPath = None
    """Extra CA to trust for Push Kit and the token endpoint (the emulator's)."""

    @model_validator(mode="after")
    def _one_secret(self) -> HmsAppSettings:
        if bool(self.client_secret_file) == bool(self.client_secret_env):
            raise ValueError("set exactly one of client_secret_file, client_secret_env")
        return self
