"""JWT bearer tokens: what is accepted and what is refused, through the secured server and the verifier."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import grpc
import jwt
import pytest

from pushsvc.access import Action
from pushsvc.auth.jwts import Issuer, JwtRejected, JwtVerifier, jwks_keys, pem_key, shared_secret
from pushsvc.clock import ManualClock
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc
from tests.auth.conftest import Secured
from tests.auth.pki import AUDIENCE, ISSUER, JwtSigner


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None) -> str:
    """A token built by hand: `secret` None gives an empty signature (alg none)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest() if secret is not None else b""
    return f"{signing_input}.{_b64(sig)}"


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    out = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alpha-register", "scope": "register", "apps": ["alpha"], "iat": now, "exp": now + 600}
    out.update(overrides)
    return {k: v for k, v in out.items() if v is not None}


async def register_with(s: Secured, token: str) -> grpc.StatusCode:
    stub = push_pb2_grpc.PushServiceStub(s.channel())
    try:
        await stub.RegisterToken(
            pb.RegisterTokenRequest(app_id="alpha", token="jwt-case-token", platform=pb.PLATFORM_FCM),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=10,
        )
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def _cases(s: Secured) -> dict[str, tuple[str, grpc.StatusCode]]:
    now = int(time.time())
    mint = s.signer.mint
    ok, unauth = grpc.StatusCode.OK, grpc.StatusCode.UNAUTHENTICATED
    return {
        "valid": (mint("alpha-register", "register", ["alpha"]), ok),
        "expired within the 30 s leeway": (mint("a", "register", ["alpha"], exp=now - 10), ok),
        "prefix scope": (mint("a", "register openid", ["alp*"]), ok),
        "expired": (mint("a", "register", ["alpha"], exp=now - 120), unauth),
        "no exp": (mint("a", "register", ["alpha"], exp=None), unauth),
        "issued in the future": (mint("a", "register", ["alpha"], iat=now + 600), unauth),
        "not yet valid": (mint("a", "register", ["alpha"], nbf=now + 600), unauth),
        "wrong audience": (mint("a", "register", ["alpha"], aud="someone-else"), unauth),
        "wrong issuer": (mint("a", "register", ["alpha"], iss="https://evil.test"), unauth),
        "no sub": (mint("a", "register", ["alpha"], sub=None), unauth),
        "alg none": (hand_signed({"alg": "none", "typ": "JWT"}, claims(), None), unauth),
        "HS256 signed with the RSA public key": (hand_signed({"alg": "HS256", "typ": "JWT"}, claims(), s.signer.public_pem), unauth),
        "signed by another key": (JwtSigner().mint("a", "register", ["alpha"]), unauth),
        "tampered claims": (_tampered(mint("a", "register", ["beta"])), unauth),
        "wrong scope": (mint("a", "send", ["alpha"]), grpc.StatusCode.PERMISSION_DENIED),
        "wrong app": (mint("a", "register", ["beta"]), grpc.StatusCode.PERMISSION_DENIED),
    }


def _tampered(token: str) -> str:
    header, payload, sig = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=="))
    body["apps"] = ["alpha"]
    return f"{header}.{_b64(json.dumps(body).encode())}.{sig}"


async def test_tokens_through_the_server(secured: Secured) -> None:
    cases = _cases(secured)
    got = {name: await register_with(secured, token) for name, (token, _) in cases.items()}
    want = {name: code for name, (_, code) in cases.items()}
    assert got == want


def test_verifier_uses_the_injected_clock_and_jwks_kid() -> None:
    signer = JwtSigner()
    clock = ManualClock()
    verifier = JwtVerifier([Issuer(ISSUER, AUDIENCE, tuple(jwks_keys(signer.jwks(kid="k1"))), leeway_s=30)], clock)
    token = jwt.encode(claims(exp=int(clock.time()) + 60), signer.private_key, algorithm="RS256", headers={"kid": "k1"})
    principal = verifier.verify(token)
    assert principal.name == f"jwt:{ISSUER}#alpha-register"
    assert principal.may(Action.REGISTER, "alpha") and not principal.may(Action.SEND, "alpha")
    other_kid = jwt.encode(claims(exp=int(clock.time()) + 60), signer.private_key, algorithm="RS256", headers={"kid": "k2"})
    with pytest.raises(JwtRejected, match="no key"):
        verifier.verify(other_kid)
    clock.advance(60 + 29)
    assert verifier.verify(token).name == principal.name  # inside the leeway
    clock.advance(2)
    with pytest.raises(JwtRejected, match="expired"):
        verifier.verify(token)


def test_shared_secret_verifies_hs256_only() -> None:
    secret = b"s" * 64
    clock = ManualClock()
    verifier = JwtVerifier([Issuer(ISSUER, AUDIENCE, (shared_secret(secret),))], clock)
    good = jwt.encode(claims(exp=int(clock.time()) + 60), secret, algorithm="HS256")
    assert verifier.verify(good).may(Action.REGISTER, "alpha")
    with pytest.raises(JwtRejected):
        verifier.verify(jwt.encode(claims(exp=int(clock.time()) + 60), secret, algorithm="HS512"))
    with pytest.raises(ValueError, match="32 bytes"):
        shared_secret(b"short")


def test_public_keys_refuse_hmac_algorithms() -> None:
    signer = JwtSigner()
    with pytest.raises(ValueError, match="do not fit"):
        pem_key(signer.public_pem, ["HS256"])
    assert pem_key(signer.public_pem).algorithms >= {"RS256"}
    assert not pem_key(signer.public_pem).algorithms & {"HS256", "HS384", "HS512", "none"}
    with pytest.raises(ValueError, match="only public keys"):
        jwks_keys(json.dumps({"keys": [{"kty": "oct", "k": _b64(b"x" * 32)}]}))
