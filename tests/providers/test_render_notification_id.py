"""Both renderers carry pushsvc's notification id as the data key NOTIFICATION_ID_KEY, counted in the size."""

from __future__ import annotations

import json

from pushsvc import models
from pushsvc.providers.apns import render_apns
from pushsvc.providers.fcm import render_fcm
from pushsvc.providers.rendering import NOTIFICATION_ID_KEY

ID = "0123456789abcdef0123456789abcdef"
MESSAGE = models.Message(title="T", data={"k": "v"})


def test_apns_payload_has_the_id_as_a_custom_key_beside_the_callers() -> None:
    plain = render_apns(MESSAGE, bundle_id="com.example.app")
    tagged = render_apns(MESSAGE, bundle_id="com.example.app", notification_id=ID)
    payload = json.loads(tagged.body["payload"])
    assert payload[NOTIFICATION_ID_KEY] == ID and payload["k"] == "v" and payload["aps"]["alert"] == {"title": "T"}
    assert NOTIFICATION_ID_KEY not in json.loads(plain.body["payload"])
    assert tagged.size_bytes - plain.size_bytes == len(f',"{NOTIFICATION_ID_KEY}":"{ID}"')
    assert tagged.body["headers"] == plain.body["headers"]


def test_fcm_data_has_the_id_even_without_caller_data() -> None:
    tagged = render_fcm(MESSAGE, notification_id=ID)
    assert tagged.body["data"] == {"k": "v", NOTIFICATION_ID_KEY: ID}
    bare = render_fcm(models.Message(title="T"), notification_id=ID)
    assert bare.body["data"] == {NOTIFICATION_ID_KEY: ID}
    assert "data" not in render_fcm(models.Message(title="T")).body
    assert tagged.size_bytes > render_fcm(MESSAGE).size_bytes


def test_a_callers_key_of_the_same_name_cannot_fake_the_id() -> None:
    message = models.Message(title="T", data={NOTIFICATION_ID_KEY: "forged"})
    assert render_fcm(message, notification_id=ID).body["data"][NOTIFICATION_ID_KEY] == ID
    apns = render_apns(message, bundle_id="com.example.app", notification_id=ID)
    assert json.loads(apns.body["payload"])[NOTIFICATION_ID_KEY] == ID
