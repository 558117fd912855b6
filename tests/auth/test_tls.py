"""TLS on the gRPC port: certificates reload when their files change; mTLS refuses callers without a certificate."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from pushsvc.access import hash_key, new_key
from pushsvc.bootstrap import build_application
from pushsvc.config import ApiKeySettings, AuthSettings, Settings, TlsSettings
from tests.auth.conftest import Secured
from tests.auth.pki import client_cert

# A fresh connection per channel: grpc would otherwise share one between channels of a process.
OWN_CONNECTION = [("grpc.ssl_target_name_override", "localhost"), ("grpc.use_local_subchannel_pool", 1)]


async def health(port: int, ca: trustme.CA | None, cert: tuple[bytes, bytes] | None = None) -> grpc.StatusCode:
    """A health check over TLS trusting `ca` (plaintext when None); its status code."""
    target = f"127.0.0.1:{port}"
    if ca is None:
        channel = grpc.aio.insecure_channel(target)
    else:
        key, chain = cert or (None, None)
        channel = grpc.aio.secure_channel(
            target, grpc.ssl_channel_credentials(ca.cert_pem.bytes(), key, chain), options=OWN_CONNECTION
        )
    async with channel:
        try:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        except grpc.aio.AioRpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


def _write_pair(ca: trustme.CA, directory: Path) -> None:
    cert = ca.issue_cert("localhost", "127.0.0.1")
    # Renames, as cert-manager and kubelet's Secret projection replace files atomically.
    for name, data in (("key.pem", cert.private_key_pem.bytes()), ("cert.pem", b"".join(b.bytes() for b in cert.cert_chain_pems))):
        tmp = directory / f".{name}.{uuid.uuid4().hex}"
        tmp.write_bytes(data)
        os.replace(tmp, directory / name)


async def test_certificates_reload_when_their_files_change(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    old_ca, new_ca = trustme.CA(), trustme.CA()
    _write_pair(old_ca, tmp_path)
    key = new_key()
    settings = Settings(
        store_url=f"mongomock://localhost/t{uuid.uuid4().hex[:12]}",
        host="127.0.0.1",
        port=0,
        auth=AuthSettings(api_keys=(ApiKeySettings(name="ops", hash=hash_key(key), apps=("*",), actions=("admin",)),)),
        tls=TlsSettings(cert_file=tmp_path / "cert.pem", key_file=tmp_path / "key.pem", reload_check_interval_s=0.0),
    )
    app = build_application(settings, providers={})
    port = await app.start()
    try:
        assert await health(port, old_ca) == grpc.StatusCode.OK
        assert await health(port, None) == grpc.StatusCode.UNAVAILABLE  # plaintext to a TLS port

        _write_pair(new_ca, tmp_path)
        assert await health(port, new_ca) == grpc.StatusCode.OK
        assert await health(port, old_ca) == grpc.StatusCode.UNAVAILABLE

        # A broken rotation keeps the working certificate in service.
        (tmp_path / "cert.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\nnot one\n")
        assert await health(port, new_ca) == grpc.StatusCode.OK
        assert "keeping the current certificate" in caplog.text
        caplog.clear()
        # And a key that does not match its certificate is refused the same way.
        (tmp_path / "key.pem").write_bytes(trustme.CA().issue_cert("localhost").private_key_pem.bytes())
        _restore = new_ca.issue_cert("localhost", "127.0.0.1")
        (tmp_path / "cert.pem").write_bytes(b"".join(b.bytes() for b in _restore.cert_chain_pems))
        assert await health(port, new_ca) == grpc.StatusCode.OK
        assert "does not match the certificate" in caplog.text
    finally:
        await app.stop(0)


async def test_mtls_refuses_callers_without_a_client_certificate(secured: Secured) -> None:
    port = secured.app.port
    cert = client_cert(secured.ca, None)
    assert await health(port, secured.ca, (cert.key_pem, cert.cert_pem)) == grpc.StatusCode.OK
    assert await health(port, secured.ca) == grpc.StatusCode.UNAVAILABLE
    foreign = client_cert(trustme.CA(), None)
    assert await health(port, secured.ca, (foreign.key_pem, foreign.cert_pem)) == grpc.StatusCode.UNAVAILABLE


async def test_health_is_open_and_reflection_needs_credentials(secured: Secured) -> None:
    channel = secured.channel()
    assert (await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)).status == (
        health_pb2.HealthCheckResponse.SERVING
    )
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    ask = reflection_pb2.ServerReflectionRequest(list_services="")

    async def services(metadata: tuple[tuple[str, str], ...]) -> list[str]:
        call = stub.ServerReflectionInfo(iter([ask]), metadata=metadata, timeout=5)
        answer = await anext(aiter(call))
        call.cancel()
        return [s.name for s in answer.list_services_response.service]

    try:
        await services(())
        raise AssertionError("reflection answered an unauthenticated caller")
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "pushsvc.v1.PushService" in await services((("authorization", f"Bearer {secured.admin_key}"),))


async def test_unknown_methods_are_unimplemented_whatever_the_credentials(secured: Secured) -> None:
    # No handler, so nothing of pushsvc's runs: not auth (no UNAUTHENTICATED), not the live-call gate.
    channel = secured.channel()
    for method in ("/pushsvc.v1.PushService/Nope", "/grpc.health.v1.Health/Nope", "/pushsvc.v9.Other/Send"):
        for metadata in ((), (("authorization", "Bearer not-a-key"),), (("authorization", f"Bearer {secured.admin_key}"),)):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await channel.unary_unary(method)(b"", metadata=metadata, timeout=5)
            assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED, (method, metadata)
