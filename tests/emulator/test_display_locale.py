"""The emulator reads the localized variant pushsvc chose from each channel's data, where pushsvc renders it."""

from __future__ import annotations

import json

import pytest

from pushsvc.emulator import handlers
from pushsvc.emulator.display import LOCALE_KEY, display_of

# Each channel's recorded request as the emulator keeps it, with pushsvc's key where that channel carries data.
MARKED = {
    "apns": {"aps": {"alert": {"title": "Hallo"}}, LOCALE_KEY: "de-AT", "k": "v"},
    "fcm": {"notification": {"title": "Hallo"}, "data": {LOCALE_KEY: "de-AT", "k": "v"}},
    "hms": {"notification": {"title": "Hallo"}, "data": json.dumps({LOCALE_KEY: "de-AT", "k": "v"})},
    "webpush": {"title": "Hallo", "data": {LOCALE_KEY: "de-AT", "k": "v"}},
}
# HMS and Web Push are shown by their channel handlers' displays, as the control API does.
VIEWS = {spec.channel: spec.display for spec in handlers.registered() if spec.display is not None}


@pytest.mark.parametrize("platform", sorted(MARKED))
def test_the_chosen_locale_is_shown_beside_the_data(platform: str) -> None:
    shown = display_of(platform, {}, MARKED[platform], "projects/p/messages/1", VIEWS)
    assert (shown.locale, shown.title, shown.data["k"]) == ("de-AT", "Hallo", "v")
    assert shown.to_json()["locale"] == "de-AT"


@pytest.mark.parametrize("platform", sorted(MARKED))
def test_the_messages_own_content_shows_no_locale(platform: str) -> None:
    payload = json.loads(json.dumps(MARKED[platform]).replace(LOCALE_KEY, "other_key"))
    assert display_of(platform, {}, payload, "projects/p/messages/1", VIEWS).locale == ""
