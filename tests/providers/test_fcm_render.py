"""render_fcm: the v1 message object without a target."""

from __future__ import annotations

import json

from pushsvc import models
from pushsvc.providers.fcm import render_fcm


def test_full_message() -> None:
    message = models.Message(
        title="T",
        body="B",
        subtitle="S",
        image_url="https://img/x.png",
        sound="default",
        badge=0,
        data={"k": "v"},
        category="OPEN",
        thread_id="th",
        collapse_key="c",
        priority=models.Priority.HIGH,
        mutable_content=True,
        fcm=models.FcmOptions(analytics_label="campaign"),
    )
    rendered = render_fcm(message)
    assert rendered.platform is models.Platform.FCM
    assert rendered.body == {
        "notification": {"title": "T", "body": "B", "image": "https://img/x.png"},
        "data": {"k": "v"},
        "android": {
            "priority": "HIGH",
            "collapse_key": "c",
            "notification": {"sound": "default", "tag": "c", "click_action": "OPEN"},
        },
        "apns": {
            "headers": {"apns-priority": "10", "apns-push-type": "alert", "apns-collapse-id": "c"},
            "payload": {
                "aps": {
                    "alert": {"subtitle": "S"},
                    "badge": 0,
                    "sound": "default",
                    "category": "OPEN",
                    "thread-id": "th",
                    "mutable-content": 1,
                }
            },
        },
        "fcm_options": {"analytics_label": "campaign"},
    }
    assert "token" not in rendered.body and "android" in rendered.body and "ttl" not in rendered.body["android"]
    assert rendered.size_bytes == len(json.dumps(rendered.body, separators=(",", ":"), ensure_ascii=False).encode())
    assert rendered.limit_bytes == 4096


def test_data_only_is_background_priority_5() -> None:
    rendered = render_fcm(models.Message(data={"a": "1"}, priority=models.Priority.NORMAL))
    assert rendered.body["android"] == {"priority": "NORMAL"}
    assert rendered.body["apns"]["headers"]["apns-priority"] == "5"
    assert rendered.body["apns"]["headers"]["apns-push-type"] == "background"
    assert rendered.body["apns"]["payload"]["aps"] == {"content-available": 1}
    assert "notification" not in rendered.body


def test_blocks_are_deep_merged_and_win() -> None:
    message = models.Message(
        title="T",
        collapse_key="c",
        fcm=models.FcmOptions(
            android={"notification": {"tag": "mine", "color": "#ff0000"}, "direct_boot_ok": True},
            apns={"headers": {"apns-priority": "5"}, "payload": {"aps": {"badge": 2}, "custom": "x"}},
            webpush={"headers": {"Urgency": "high"}},
        ),
    )
    body = render_fcm(message).body
    assert body["android"]["notification"] == {"tag": "mine", "color": "#ff0000"}
    assert body["android"]["collapse_key"] == "c" and body["android"]["direct_boot_ok"] is True
    assert body["apns"]["headers"]["apns-priority"] == "5"
    assert body["apns"]["headers"]["apns-collapse-id"] == "c"
    assert body["apns"]["payload"] == {"aps": {"badge": 2}, "custom": "x"}
    assert body["webpush"] == {"headers": {"Urgency": "high"}}


def test_unicode_size_in_bytes() -> None:
    rendered = render_fcm(models.Message(body="ü" * 100))
    text = json.dumps(rendered.body, separators=(",", ":"), ensure_ascii=False)
    assert rendered.size_bytes == len(text.encode()) > len(text)
