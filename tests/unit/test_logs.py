"""Log formatting: JSON lines with context and fields, readable text, traceparent validation, redaction."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from pushsvc import logs
from pushsvc.access import new_key
from tests.auth.pki import JwtSigner

VALID_TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, logging.Logger]]:
    stream = io.StringIO()
    root = logging.getLogger()
    level, own_level = root.level, logging.getLogger("pushsvc").level
    handler = logs.configure("json", "DEBUG", stream=stream)
    try:
        yield stream, logging.getLogger("pushsvc.test")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        logging.getLogger("pushsvc").setLevel(own_level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_json_line_has_time_level_logger_message_context_and_fields(captured: tuple[io.StringIO, logging.Logger]) -> None:
    stream, log = captured
    rid = logs.request_id.set("req-1")
    tp = logs.traceparent.set(VALID_TP)
    try:
        with logs.bound_notification("n" * 32):
            log.info("sent %d", 3, extra=logs.fields(targeted=3, app="shop", message="not mine", nested={"a": [1]}))
        log.warning("after")
    finally:
        logs.request_id.reset(rid)
        logs.traceparent.reset(tp)
    log.debug("outside")
    first, second, third = lines(stream)
    assert set(first) == {"time", "level", "logger", "message", "request_id", "traceparent", "notification_id",
                          "targeted", "app", "nested"}
    assert (first["level"], first["logger"], first["message"]) == ("INFO", "pushsvc.test", "sent 3")
    assert str(first["time"]).endswith("Z") and "T" in str(first["time"])
    assert (first["request_id"], first["traceparent"], first["notification_id"]) == ("req-1", VALID_TP, "n" * 32)
    assert (first["targeted"], first["nested"]) == (3, '{"a": [1]}')
    assert "notification_id" not in second and second["request_id"] == "req-1"
    assert set(third) == {"time", "level", "logger", "message"}


def test_an_exception_is_one_json_line_too(captured: tuple[io.StringIO, logging.Logger]) -> None:
    stream, log = captured
    try:
        raise RuntimeError("boom with Bearer abc.def")
    except RuntimeError:
        log.exception("failed")
    (line,) = lines(stream)
    assert "Traceback" in str(line["exception"]) and "boom" in str(line["exception"])
    assert "abc.def" not in stream.getvalue()


def test_secrets_and_tokens_are_redacted_in_messages_fields_and_text(captured: tuple[io.StringIO, logging.Logger]) -> None:
    stream, log = captured
    key = new_key()
    token = JwtSigner().mint("svc", "send", ["shop"])
    apns = "0410" + "ab" * 30
    fcm = "cXr9Z1aBQmK3dXy4l7QpZt:APA91b" + "F" * 120 + "-x_y"
    pem = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----"
    log.info("authorization: Bearer %s, key %s, jwt %s", key, key, token, extra=logs.fields(pem=pem, device=apns))
    log.info("tokens %s and %s", apns, fcm)
    out = stream.getvalue()
    for secret in (key, key[4:], token, token.split(".")[1], apns, fcm, "MIGHAgEAMBMGByqGSM49"):
        assert secret not in out
    first, second = lines(stream)
    assert "Bearer [redacted]" in str(first["message"]) and "psk_[redacted]" in str(first["message"])
    assert "[jwt redacted]" in str(first["message"]) and first["pem"] == "[private key redacted]"
    assert first["device"] == "0410abab…"
    assert second["message"] == f"tokens {logs.redact_token(apns)} and {logs.redact_token(fcm)}"
    # What pushsvc names on purpose stays readable: ids and hashes shorter than a token.
    log.info("notification %s request %s", "f" * 32, "r-1")
    assert lines(stream)[-1]["message"] == f"notification {'f' * 32} request r-1"


def test_redact_token_keeps_a_short_prefix_never_the_whole_token() -> None:
    assert logs.redact_token("a1" * 32) == "a1a1a1a1…"
    assert logs.redact_token("quota-1") == "quo…"
    assert logs.redact_token("") == "…"


def test_the_text_format_is_one_readable_line_with_context_and_fields() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = logs.configure("text", "INFO", stream=stream)
    try:
        rid = logs.request_id.set("req-2")
        logging.getLogger("pushsvc.audit").info("audit %s", "Send", extra=logs.fields(app="shop", targeted=2))
        logs.request_id.reset(rid)
        logging.getLogger("pushsvc.test").debug("hidden at INFO")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    (line,) = stream.getvalue().splitlines()
    assert line.endswith(" INFO pushsvc.audit audit Send request_id=req-2 app=shop targeted=2")


def test_configure_replaces_its_handler_and_keeps_libraries_at_info() -> None:
    root = logging.getLogger()
    level = root.level
    try:
        first = logs.configure("json", "DEBUG", stream=io.StringIO())
        second = logs.configure("text", "DEBUG", stream=io.StringIO())
        assert first not in root.handlers and second in root.handlers
        assert root.level == logging.INFO and logging.getLogger("pushsvc").level == logging.DEBUG
        with pytest.raises(ValueError):
            logs.configure("yaml", "INFO")
        with pytest.raises(ValueError):
            logs.configure("json", "LOUD")
    finally:
        for h in [h for h in root.handlers if h.get_name() == "pushsvc"]:
            root.removeHandler(h)
        root.setLevel(level)
        logging.getLogger("pushsvc").setLevel(logging.NOTSET)


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (VALID_TP, True),
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-future-field", True),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", False),
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", False),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", False),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", False),
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", False),
        ("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", False),
        ("garbage", False),
        ("", False),
    ],
)
def test_traceparent_validation(value: str, valid: bool) -> None:
    assert logs.valid_traceparent(value) == (value if valid else "")


def test_request_ids_from_callers_are_bounded_and_printable() -> None:
    assert logs.valid_request_id("b7f3c2d1-req.42") == "b7f3c2d1-req.42"
    assert logs.valid_request_id("x" * 129) == "" and logs.valid_request_id("a b") == "" and logs.valid_request_id("a\nb") == ""


def test_clip_keeps_short_values_and_marks_what_it_cut() -> None:
    assert logs.clip("abc") == "abc"
    assert logs.clip("a" * 300) == "a" * 256 + "…[+44 chars]"
    record = logging.LogRecord("pushsvc.t", logging.INFO, __file__, 1, "app %s refused: %d, %r", ("z." * 2500, 7, "ok"), None)
    message = json.loads(logs.JsonFormatter().format(record))["message"]
    assert message == "app " + "z." * 128 + "…[+4744 chars] refused: 7, 'ok'"
    text = logs.TextFormatter().format(record)
    assert "z." * 128 + "…[+4744 chars] refused: 7, 'ok'" in text and len(text) < 400
