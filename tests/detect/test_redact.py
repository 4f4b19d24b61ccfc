"""Redactor and StreamRestorer: placeholders, round trips, streaming splits, presidio operators."""

from __future__ import annotations

import re

import pytest

from wardgate.detect.findings import Finding
from wardgate.detect.pii import find_pii
from wardgate.detect.redact import Redactor, StreamRestorer

_TEXT = (
    "Mail bob@example.com or call +44 20 7946 0958; again bob@example.com, "
    "card 4111 1111 1111 1111."
)


def _redact(redactor: Redactor, text: str) -> str:
    return redactor.redact(text, find_pii(text))


def test_replace_gives_typed_numbered_placeholders() -> None:
    redacted = _redact(Redactor(), _TEXT)
    assert redacted == (
        "Mail <EMAIL_ADDRESS_1> or call <PHONE_NUMBER_1>; again <EMAIL_ADDRESS_1>, "
        "card <CREDIT_CARD_1>."
    )


def test_same_value_same_placeholder_across_texts_of_a_request() -> None:
    redactor = Redactor()
    first = _redact(redactor, "from alice@example.org to bob@example.com")
    second = _redact(redactor, "cc bob@example.com and carol@example.net")
    assert first == "from <EMAIL_ADDRESS_1> to <EMAIL_ADDRESS_2>"
    assert second == "cc <EMAIL_ADDRESS_2> and <EMAIL_ADDRESS_3>"
    assert redactor.counts() == {"EMAIL_ADDRESS": 3}


def test_each_request_numbers_from_one() -> None:
    _redact(Redactor(), "alice@example.org")
    assert _redact(Redactor(), "bob@example.com") == "<EMAIL_ADDRESS_1>"


def test_round_trip_restores_the_original() -> None:
    redactor = Redactor()
    redacted = _redact(redactor, _TEXT)
    assert redacted != _TEXT
    assert redactor.restore(redacted) == _TEXT


def test_restore_leaves_unknown_and_malformed_placeholders() -> None:
    redactor = Redactor()
    _redact(redactor, "bob@example.com")
    text = "<EMAIL_ADDRESS_2> <PERSON_1> <EMAIL_ADDRESS_1 > <email_address_1> <EMAIL_ADDRESS_1>"
    assert redactor.restore(text) == (
        "<EMAIL_ADDRESS_2> <PERSON_1> <EMAIL_ADDRESS_1 > <email_address_1> bob@example.com"
    )


def test_counts_are_distinct_values_per_entity() -> None:
    redactor = Redactor()
    _redact(redactor, _TEXT)
    assert redactor.counts() == {"EMAIL_ADDRESS": 1, "PHONE_NUMBER": 1, "CREDIT_CARD": 1}
    assert "bob" not in repr(redactor.counts())


def test_overlapping_findings_keep_the_stronger() -> None:
    text = "key sk-abc123 here"
    findings = [Finding("SECRET", 4, 13, 0.9), Finding("PHONE_NUMBER", 7, 13, 0.5)]
    assert Redactor().redact(text, findings) == "key <SECRET_1> here"


def test_findings_in_any_order_are_redacted_in_place() -> None:
    text = "a@b.co then 555-123-4567"
    findings = [Finding("PHONE_NUMBER", 12, 24, 0.9), Finding("EMAIL_ADDRESS", 0, 6, 0.95)]
    assert Redactor().redact(text, findings) == "<EMAIL_ADDRESS_1> then <PHONE_NUMBER_1>"
    assert Redactor().redact(text, findings[::-1]) == "<EMAIL_ADDRESS_1> then <PHONE_NUMBER_1>"


def test_mask_hides_every_character() -> None:
    redacted = _redact(Redactor("mask"), "mail bob@example.com now")
    assert redacted == "mail " + "*" * len("bob@example.com") + " now"


def test_hash_is_stable_within_a_request_and_salted_across() -> None:
    text = "bob@example.com and bob@example.com"
    one = _redact(Redactor("hash"), text).split(" and ")
    other = _redact(Redactor("hash"), text).split(" and ")
    assert one[0] == one[1] and re.fullmatch(r"[0-9a-f]{64}", one[0])
    assert one[0] != other[0]


def test_encrypt_needs_a_valid_key_and_hides_the_value() -> None:
    with pytest.raises(ValueError):
        Redactor("encrypt")
    with pytest.raises(ValueError):
        Redactor("encrypt", key="short")
    redacted = _redact(Redactor("encrypt", key="0123456789abcdef"), "mail bob@example.com now")
    assert "bob" not in redacted and redacted.startswith("mail ") and redacted.endswith(" now")


def test_unknown_operator_is_refused() -> None:
    with pytest.raises(ValueError):
        Redactor("scramble")


def _stream(redactor: Redactor, chunks: list[str]) -> tuple[str, list[str]]:
    restorer = StreamRestorer(redactor)
    emitted = [restorer.feed(c) for c in chunks]
    return "".join(emitted) + restorer.flush(), emitted


def test_stream_split_at_every_position_pair() -> None:
    redactor = Redactor()
    _redact(redactor, "bob@example.com and +44 20 7946 0958")
    answer = "Sure: <EMAIL_ADDRESS_1> <b>or</b> <PHONE_NUMBER_1>, a < b."
    expected = redactor.restore(answer)
    assert expected == "Sure: bob@example.com <b>or</b> +44 20 7946 0958, a < b."
    n = len(answer)
    for i in range(n + 1):
        for j in range(i, n + 1):
            out, emitted = _stream(redactor, [answer[:i], answer[i:j], answer[j:]])
            assert out == expected, (i, j)
            assert not any(re.search(r"<[A-Z_]+_\d+>", e) for e in emitted)


def test_stream_one_character_at_a_time() -> None:
    redactor = Redactor()
    _redact(redactor, "alice@example.org bob@example.com")
    answer = "<EMAIL_ADDRESS_2><EMAIL_ADDRESS_1>!"
    out, _ = _stream(redactor, list(answer))
    assert out == "bob@example.comalice@example.org!"


def test_stream_holds_only_what_could_be_a_placeholder() -> None:
    redactor = Redactor()
    _redact(redactor, "bob@example.com")
    restorer = StreamRestorer(redactor)
    assert restorer.feed("if a < b then") == "if a < b then"
    assert restorer.feed(" <div>") == " <div>"
    assert restorer.feed(" x <EM") == " x "
    assert restorer.feed("PTY") == "<EMPTY"  # released as soon as it cannot be one
    assert restorer.feed(" <") == " "
    assert restorer.flush() == "<"


def test_stream_with_nothing_replaced_holds_nothing() -> None:
    restorer = StreamRestorer(Redactor("mask"))
    assert restorer.feed("x <EMAIL_ADDRESS_1") == "x <EMAIL_ADDRESS_1"
    assert restorer.flush() == ""


def test_placeholder_number_prefix_waits_for_the_longer_one() -> None:
    redactor = Redactor()
    for n in range(12):
        _redact(redactor, f"user{n}@example.com")
    restorer = StreamRestorer(redactor)
    assert restorer.feed("<EMAIL_ADDRESS_1") == ""
    assert restorer.feed("2>") == "user11@example.com"
