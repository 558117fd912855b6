"""ApnsTokenSigner: ES256 shape, sharing, and Apple's 20/60-minute rules on a fake clock."""

from __future__ import annotations

import itertools

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pushsvc.providers.apns_jwt import ApnsTokenSigner


def _decode(header: str, key: ec.EllipticCurvePrivateKey) -> tuple[dict, dict]:
    assert header.startswith("bearer ")
    token = header.removeprefix("bearer ")
    claims = jwt.decode(token, key.public_key(), algorithms=["ES256"], options={"verify_iat": False})
    return jwt.get_unverified_header(token), claims


def test_token_is_es256_with_kid_iss_and_iat(p8_pem, ec_key, clock) -> None:
    signer = ApnsTokenSigner(p8_pem, "KEYID12345", "TEAMID1234", clock=clock)
    header, claims = _decode(signer.authorization(), ec_key)
    assert header["alg"] == "ES256"
    assert header["kid"] == "KEYID12345"
    assert claims == {"iss": "TEAMID1234", "iat": int(clock.now)}


def test_same_token_until_refresh_age_then_one_new_one(p8_pem, clock) -> None:
    signer = ApnsTokenSigner(p8_pem, "KEYID12345", "TEAMID1234", clock=clock)
    first = signer.authorization()
    for _ in range(100):
        clock.advance(29.99)  # 100 calls spread over 49m59s
        assert signer.authorization() == first
    assert signer.mint_count == 1
    clock.advance(1.0)  # now 50 minutes old
    second = signer.authorization()
    assert second != first
    assert signer.mint_count == 2
    assert signer.authorization() == second


def test_never_mints_twice_within_20_minutes_and_never_serves_older_than_60(p8_pem, clock) -> None:
    signer = ApnsTokenSigner(p8_pem, "KEYID12345", "TEAMID1234", clock=clock)
    mints: list[float] = []
    # Six simulated hours, one call every 7 seconds.
    for _ in range(6 * 3600 // 7):
        before = signer.mint_count
        signer.authorization()
        if signer.mint_count != before:
            mints.append(clock.now)
        assert clock.now - signer.issued_at < 3600
        clock.advance(7)
    gaps = [b - a for a, b in itertools.pairwise(mints)]
    assert gaps and min(gaps) >= 1200
    assert max(gaps) < 3600


def test_refresh_after_outside_apples_window_is_refused(p8_pem) -> None:
    with pytest.raises(ValueError):
        ApnsTokenSigner(p8_pem, "K", "T", refresh_after_s=600)
    with pytest.raises(ValueError):
        ApnsTokenSigner(p8_pem, "K", "T", refresh_after_s=3600)


def test_force_refresh_mints_once_per_rejected_token(p8_pem, clock) -> None:
    signer = ApnsTokenSigner(p8_pem, "KEYID12345", "TEAMID1234", clock=clock)
    stale = signer.authorization()
    clock.advance(1)
    fresh = signer.force_refresh(rejected=stale)
    assert fresh != stale and signer.mint_count == 2
    # Other tasks that got 403 for the same stale token reuse the fresh one.
    assert signer.force_refresh(rejected=stale) == fresh
    assert signer.mint_count == 2
    assert signer.authorization() == fresh
    clock.advance(1)
    assert signer.force_refresh() != fresh  # unconditional
    assert signer.mint_count == 3


def test_non_p256_key_is_refused() -> None:
    rsa_pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError):
        ApnsTokenSigner(rsa_pem, "K", "T")


def test_repr_does_not_leak_the_token(p8_pem, clock) -> None:
    signer = ApnsTokenSigner(p8_pem, "KEYID12345", "TEAMID1234", clock=clock)
    token = signer.authorization().removeprefix("bearer ")
    assert token not in repr(signer)
