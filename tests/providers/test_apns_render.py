"""render_apns: payload, headers, topic suffixes, sizes and limits."""

from __future__ import annotations

import json

import pytest

from pushsvc import models
from pushsvc.providers.apns import render_apns

BUNDLE = "com.example.app"


def _payload(rendered) -> dict:
    return json.loads(rendered.body["payload"])


def test_alert_payload_and_headers() -> None:
    message = models.Message(
        title="T",
        subtitle="S",
        body="B",
        sound="ping.aiff",
        badge=3,
        category="CAT",
        thread_id="th",
        collapse_key="c1",
        content_available=True,
        mutable_content=True,
        data={"k": "v", "n": "1"},
    )
    rendered = render_apns(message, bundle_id=BUNDLE)
    assert rendered.platform is models.Platform.APNS
    assert _payload(rendered) == {
        "aps": {
            "alert": {"title": "T", "subtitle": "S", "body": "B"},
            "badge": 3,
            "sound": "ping.aiff",
            "category": "CAT",
            "thread-id": "th",
            "content-available": 1,
            "mutable-content": 1,
        },
        "k": "v",
        "n": "1",
    }
    assert rendered.body["headers"] == {
        "apns-push-type": "alert",
        "apns-priority": "10",
        "apns-topic": BUNDLE,
        "apns-collapse-id": "c1",
    }
    # Compact JSON, and size is its UTF-8 length.
    assert " " not in rendered.body["payload"].replace("ping.aiff", "")
    assert rendered.size_bytes == len(rendered.body["payload"].encode())
    assert rendered.limit_bytes == 4096


def test_badge_zero_is_present() -> None:
    rendered = render_apns(models.Message(badge=0), bundle_id=BUNDLE)
    assert _payload(rendered)["aps"]["badge"] == 0
    assert rendered.body["headers"]["apns-push-type"] == "alert"


def test_size_counts_utf8_bytes() -> None:
    rendered = render_apns(models.Message(title="é" * 10), bundle_id=BUNDLE)
    assert rendered.size_bytes == len(rendered.body["payload"].encode("utf-8"))
    assert rendered.size_bytes > len(rendered.body["payload"])


def test_background_push_is_priority_5_with_content_available() -> None:
    rendered = render_apns(models.Message(data={"sync": "1"}, priority=models.Priority.HIGH), bundle_id=BUNDLE)
    assert rendered.body["headers"]["apns-push-type"] == "background"
    assert rendered.body["headers"]["apns-priority"] == "5"
    assert _payload(rendered) == {"aps": {"content-available": 1}, "sync": "1"}
    # Even an explicit header override cannot make a background push priority 10.
    forced = render_apns(
        models.Message(data={"a": "b"}, apns=models.ApnsOptions(headers={"apns-priority": "10"})), bundle_id=BUNDLE
    )
    assert forced.body["headers"]["apns-priority"] == "5"


@pytest.mark.parametrize(
    ("priority", "expected"),
    [(models.Priority.HIGH, "10"), (models.Priority.NORMAL, "5"), (models.Priority.UNSPECIFIED, "10")],
)
def test_alert_priority(priority: models.Priority, expected: str) -> None:
    rendered = render_apns(models.Message(title="x", priority=priority), bundle_id=BUNDLE)
    assert rendered.body["headers"]["apns-priority"] == expected


@pytest.mark.parametrize(
    ("push_type", "topic"),
    [
        (models.PushType.ALERT, BUNDLE),
        (models.PushType.BACKGROUND, BUNDLE),
        (models.PushType.MDM, BUNDLE),
        (models.PushType.VOIP, BUNDLE + ".voip"),
        (models.PushType.LIVEACTIVITY, BUNDLE + ".push-type.liveactivity"),
        (models.PushType.COMPLICATION, BUNDLE + ".complication"),
        (models.PushType.FILEPROVIDER, BUNDLE + ".pushkit.fileprovider"),
        (models.PushType.LOCATION, BUNDLE + ".location-query"),
        (models.PushType.PUSHTOTALK, BUNDLE + ".voip-ptt"),
        (models.PushType.WIDGETS, BUNDLE + ".push-type.widgets"),
        (models.PushType.CONTROLS, BUNDLE + ".push-type.controls"),
    ],
)
def test_topic_suffix_per_push_type(push_type: models.PushType, topic: str) -> None:
    rendered = render_apns(models.Message(title="x", push_type=push_type), bundle_id=BUNDLE)
    assert rendered.body["headers"]["apns-topic"] == topic
    assert rendered.body["headers"]["apns-push-type"] == push_type.value


def test_voip_limit_is_5120_others_4096() -> None:
    assert render_apns(models.Message(push_type=models.PushType.VOIP), bundle_id=BUNDLE).limit_bytes == 5120
    assert render_apns(models.Message(push_type=models.PushType.PUSHTOTALK), bundle_id=BUNDLE).limit_bytes == 4096


def test_oversized_payload_reports_its_size() -> None:
    rendered = render_apns(models.Message(body="x" * 5000), bundle_id=BUNDLE)
    assert rendered.size_bytes > rendered.limit_bytes == 4096


def test_escape_hatches_win() -> None:
    message = models.Message(
        title="T",
        badge=1,
        data={"k": "data"},
        apns=models.ApnsOptions(
            payload={"aps": {"badge": 9, "alert": {"launch-image": "x.png"}}, "k": "override", "extra": [1, 2]},
            headers={"apns-priority": "5", "Apns-Expiration": "0"},
            topic="com.other.app",
        ),
    )
    rendered = render_apns(message, bundle_id=BUNDLE)
    assert _payload(rendered) == {
        "aps": {"alert": {"title": "T", "launch-image": "x.png"}, "badge": 9},
        "k": "override",
        "extra": [1, 2],
    }
    headers = rendered.body["headers"]
    assert headers["apns-topic"] == "com.other.app"
    assert headers["apns-priority"] == "5"
    assert headers["apns-expiration"] == "0"


def test_data_key_aps_is_refused() -> None:
    with pytest.raises(ValueError):
        render_apns(models.Message(data={"aps": "x"}), bundle_id=BUNDLE)


def test_render_is_json_compatible() -> None:
    rendered = render_apns(models.Message(title="T"), bundle_id=BUNDLE)
    assert json.loads(json.dumps(rendered.body)) == rendered.body
