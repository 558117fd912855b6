"""Which localized variant a device gets: the documented rules of `pushsvc.locales`."""

from __future__ import annotations

import pytest

from pushsvc.locales import VariantChooser, canonical, is_tag

VARIANTS = ("pt-BR", "pt", "zh-Hant", "en", "de-CH")


@pytest.mark.parametrize(
    ("locale", "chosen"),
    [
        ("pt-BR", "pt-BR"),  # the exact tag
        ("pt_br", "pt-BR"),  # case and "_" do not matter
        ("PT-br", "pt-BR"),
        ("pt-PT", "pt"),  # then the language
        ("pt", "pt"),
        ("zh-Hant-TW", "zh-Hant"),  # cut subtag by subtag: zh-Hant-TW, zh-Hant
        ("zh-Hans-CN", ""),  # zh-Hans, then zh: no variant, the message's own content
        ("zh", ""),
        ("de", ""),  # a general locale never takes a more specific variant (de-CH)
        ("de-CH", "de-CH"),
        ("en-GB", "en"),
        ("en-US-x-private", "en"),
        ("", ""),  # no locale
        ("fr", ""),  # no variant of that language
        ("not a locale", ""),  # malformed
        ("e", ""),
        ("en--US", ""),
        ("x" * 40, ""),
        ("ñu-ES", ""),
    ],
)
def test_each_locale_gets_the_exact_tag_then_the_language_then_the_default(locale: str, chosen: str) -> None:
    assert VariantChooser(VARIANTS).choose(locale) == chosen


def test_the_answer_is_remembered_per_locale_and_spelled_as_the_message_spelled_it() -> None:
    chooser = VariantChooser(["ZH-hant"])
    assert chooser.choose("zh-Hant-HK") == "ZH-hant"
    assert chooser.choose("zh-Hant-HK") == "ZH-hant"
    assert VariantChooser([]).choose("en") == ""


@pytest.mark.parametrize("tag", ["en", "pt-BR", "zh-Hant-TW", "sr-Latn-RS", "es-419", "de-CH-1996", "pt_BR"])
def test_well_formed_tags(tag: str) -> None:
    assert is_tag(tag)
    assert canonical(tag) == tag.lower().replace("_", "-")


@pytest.mark.parametrize("tag", ["", "e", "123", "en-", "-en", "en US", "en\n", "languages-x", "en-toolongsubtag", "ñu", "a" * 36])
def test_malformed_tags(tag: str) -> None:
    assert not is_tag(tag)
