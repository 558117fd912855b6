"""The Connect port's settings: off by default in serve, refused beside [tls] (it has no TLS of its own)."""

from __future__ import annotations

import pydantic
import pytest

from pushsvc.config import Settings, TlsSettings


def test_off_by_default() -> None:
    assert Settings().connect_port == 0


def test_refused_with_tls() -> None:
    tls = TlsSettings(cert_file="/c.pem", key_file="/k.pem")
    Settings(tls=tls)  # TLS alone is fine
    with pytest.raises(pydantic.ValidationError, match="connect_port: the Connect port is plaintext"):
        Settings(connect_port=8080, tls=tls)
