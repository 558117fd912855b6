"""Reading a channel's secrets from files or the environment, as config problems.

A secret that cannot be read or parsed becomes a ConfigError naming its
setting: serve and check-config print it as they print every config problem,
by key path, without a traceback, and never with the secret's content.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509

from pushsvc.sections import ConfigError


@contextlib.contextmanager
def credential(where: str) -> Iterator[None]:
    """Turns a failure to read or parse the secret of setting `where` into a ConfigError."""
    try:
        yield
    except ConfigError:
        raise
    except OSError as exc:
        name = f" {exc.filename}" if exc.filename else ""
        raise ConfigError(f"{where}: cannot read{name}: {exc.strerror or exc}") from None
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def read(path: Path, where: str) -> bytes:
    """A file's bytes, or a ConfigError naming `where`."""
    with credential(where):
        return path.read_bytes()


def ca(path: Path | None, where: str) -> bytes | None:
    """An extra CA bundle, parsed here: libcurl would only reject it at the first connection."""
    if path is None:
        return None
    pem = read(path, where)
    with credential(where):
        x509.load_pem_x509_certificates(pem)
    return pem


def secret(path: Path | None, env_name: str, where: str) -> bytes:
    """A provider secret from its file, or from the environment variable that holds it.

    `where` is the key path of the setting that names it (`apps.shop.fcm.service_account_env`).
    """
    if path is not None:
        return read(path, where)
    value = os.environ.get(env_name, "")
    if not value:
        raise ConfigError(f"{where}: environment variable {env_name} is not set")
    return value.encode()
