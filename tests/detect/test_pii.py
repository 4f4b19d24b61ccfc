"""find_pii on hand-written examples, and the recall/precision bars on the dev corpus."""

from __future__ import annotations

import json

import pytest

from tests.corpora import corpus, needs_corpus
from wardgate.detect.findings import Finding
from wardgate.detect.pii import PII_ENTITIES, find_pii, resolve_overlaps

_CORPUS = corpus("pii-dev.jsonl")


def _spans(text: str, entities: frozenset[str] | None = None) -> list[tuple[str, str]]:
    return [(f.entity, text[f.start : f.end]) for f in find_pii(text, entities)]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Call me at +44 20 7946 0958 tomorrow.", "+44 20 7946 0958"),
        ("UK office: +44 (0)20 7946 0958.", "+44 (0)20 7946 0958"),
        ("Ring 020 7946 0958 after lunch", "020 7946 0958"),
        ("Berlin +49 30 12345678 is the desk", "+49 30 12345678"),
        ("Munich: +49-89-636-48018", "+49-89-636-48018"),
        ("Mobil: 0151 23456789", "0151 23456789"),
        ("Paris +33 1 23 45 67 89 works", "+33 1 23 45 67 89"),
        ("son portable 06.12.34.56.78", "06.12.34.56.78"),
        ("Delhi office +91 98765 43210", "+91 98765 43210"),
        ("Tokyo +81 3-1234-5678", "+81 3-1234-5678"),
        ("Beijing +86 138 0013 8000", "+86 138 0013 8000"),
        ("US desk (415) 555-2671 until six", "(415) 555-2671"),
        ("toll free 1-800-555-0199", "1-800-555-0199"),
        ("reach me at 415.555.2671 x204", "415.555.2671 x204"),
        ("from abroad dial 0044 20 7946 0958", "0044 20 7946 0958"),
        ("whatsapp me on 98765 43210", "98765 43210"),
        ("call me on 4155552671", "4155552671"),
    ],
)
def test_phone_numbers_from_many_countries(text: str, value: str) -> None:
    assert ("PHONE_NUMBER", value) in _spans(text)


@pytest.mark.parametrize(
    "text",
    [
        "Released on 2026-01-12 at 10:30, build 2026.11.24.",
        "Invoice 4500012345 is overdue",  # bare ten digits, no phone context, not NANP
        "ISBN 978-3-16-148410-0 and part 12-345-678",
        "Meeting 12/01/2026 14 people",
        "Population 1 234 567 890 and 3.14159265358979",
        "Order 123-45-6789-0 ships",
        "Coordinates 48.8566, 2.3522",
    ],
)
def test_numbers_that_are_not_pii(text: str) -> None:
    assert find_pii(text) == []


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("5555 5555 5555 4444", "Mastercard 51-55"),
        ("2223 0031 2200 3222", "Mastercard 2-series"),
        ("2720 9926 9309 2127", "Mastercard 2-series upper end"),
        ("4111-1111-1111-1111", "Visa dashed"),
        ("4000000000000000006", "Visa 19 digits"),
        ("3782 822463 10005", "Amex 4-6-5"),
        ("3056 930902 5904", "Diners 14"),
        ("6011 1111 1111 1117", "Discover"),
        ("3530 1113 3330 0000", "JCB"),
        ("6200000000000005", "UnionPay"),
        ("6759 6498 2643 8453", "Maestro 16"),
    ],
)
def test_card_numbers(value: str, why: str) -> None:
    assert _spans(f"charged {value} today") == [("CREDIT_CARD", value)], why


def test_short_maestro_needs_card_context() -> None:
    value = "501800000009"  # 12 digits, Luhn-valid, Maestro range
    assert _spans(f"Please charge card {value} for it.") == [("CREDIT_CARD", value)]
    assert _spans(f"ticket {value} closed") == []


def test_card_with_bad_luhn_or_bad_grouping_is_rejected() -> None:
    assert _spans("card 4111 1111 1111 1112") == []
    assert _spans("card 4111 1111-1111 1111") == []  # mixed separators
    assert _spans("order 4111-2222-3333-4445 shipped") == []


def test_card_followed_by_expiry_keeps_the_card() -> None:
    assert _spans("card 4111 1111 1111 1111 12/26") == [("CREDIT_CARD", "4111 1111 1111 1111")]


def test_ibans_spaced_compact_and_bad_checksum() -> None:
    text = (
        "Pay DE89 3704 0044 0532 0130 00 or FR14 2004 1010 0505 0001 3M02 606 "
        "or NL91ABNA0417164300."
    )
    assert _spans(text) == [
        ("IBAN_CODE", "DE89 3704 0044 0532 0130 00"),
        ("IBAN_CODE", "FR14 2004 1010 0505 0001 3M02 606"),
        ("IBAN_CODE", "NL91ABNA0417164300"),
    ]
    assert _spans("Pay DE89 3704 0044 0532 0130 01 now") == []  # check digits do not match
    assert _spans("Pay ZZ89 3704 0044 0532 0130 00 now") == []  # no such country


def test_ssn_forms_and_invalid_ranges() -> None:
    assert _spans("SSN 536-22-1234") == [("US_SSN", "536-22-1234")]
    assert _spans("social security number 536 22 1234") == [("US_SSN", "536 22 1234")]
    assert _spans("my ssn is 536221234") == [("US_SSN", "536221234")]
    assert _spans("ticket 536221234") == []  # a bare nine-digit run needs context
    for bad in ("000-12-3456", "666-12-3456", "912-12-3456", "536-00-1234", "536-22-0000",
                "078-05-1120", "111-11-1111"):
        assert _spans(f"SSN {bad}") == [], bad


def test_ssn_context_raises_the_score() -> None:
    plain = find_pii("ref 536-22-1234")
    with_context = find_pii("SSN: 536-22-1234")
    assert plain and with_context and with_context[0].score > plain[0].score


def test_ip_addresses() -> None:
    text = "hosts 192.168.1.1, 10.0.0.255/8, ::1, 2001:db8::8a2e:370:7334 and ::ffff:192.0.2.128"
    assert [v for _, v in _spans(text)] == [
        "192.168.1.1", "10.0.0.255", "::1", "2001:db8::8a2e:370:7334", "::ffff:192.0.2.128",
    ]


def test_versions_times_and_code_are_not_ips() -> None:
    text = ("Upgrade to version 10.2.3.4 (was 1.2.3) at 12:30:45; mac 00:1A:2B:3C:4D:5E; "
            "std::vector and Abc::def; 256.1.1.1 and 1.2.3.4.5")
    assert _spans(text) == []


def test_emails() -> None:
    text = "Write jean.dupont+tag@sub.example.co.uk, müller@beispiel.de, not user@example or a@b.c1"
    assert _spans(text) == [
        ("EMAIL_ADDRESS", "jean.dupont+tag@sub.example.co.uk"),
        ("EMAIL_ADDRESS", "müller@beispiel.de"),
    ]


def test_entity_filter_and_entity_names() -> None:
    text = "mail bob@example.com from 10.1.2.3"
    assert _spans(text, frozenset({"IP_ADDRESS"})) == [("IP_ADDRESS", "10.1.2.3")]
    assert {e for e, _ in _spans(text)} <= PII_ENTITIES


def test_results_sorted_and_disjoint() -> None:
    text = "SSN 536-22-1234, phone +1-415-555-2671, card 4111111111111111, bob@example.com"
    found = find_pii(text)
    assert len(found) == 4
    assert all(a.end <= b.start for a, b in zip(found, found[1:]))


_PROSE = "Please summarise the meeting notes below for the team and list the open questions. " * 3


@pytest.mark.parametrize("size", [0, 1, 4, 64])
def test_long_texts_find_what_short_ones_do(size: int) -> None:
    # From 128 characters up only digit clusters are searched: the same entities, at any length.
    entities = ["card 4111 1111 1111 1111", "SSN 536-22-1234", "call +44 20 7946 0958",
                "host 192.168.10.20", "IBAN GB82 WEST 1234 5698 7654 32", "mail bob@example.com"]
    text = f" {_PROSE * size} ".join(entities) + " ref 7 of 2026"
    assert [e for e, _ in _spans(text)] == [
        "CREDIT_CARD", "US_SSN", "PHONE_NUMBER", "IP_ADDRESS", "IBAN_CODE", "EMAIL_ADDRESS"
    ]


def test_phone_in_other_scripts_digits_in_a_long_text() -> None:
    for phone in ("+44 ２０ ７９４６ ０９５８", "+٤٤ ٢٠ ٧٩٤٦ ٠٩٥٨"):
        text = f"{_PROSE}call {phone} after 5 pm. {_PROSE}"
        assert ("PHONE_NUMBER", phone) in _spans(text)


def test_resolve_overlaps_prefers_score_then_length() -> None:
    spans = [Finding("A", 0, 10, 0.5), Finding("B", 5, 12, 0.9), Finding("C", 12, 20, 0.5),
             Finding("D", 12, 16, 0.5)]
    assert resolve_overlaps(spans) == [Finding("B", 5, 12, 0.9), Finding("C", 12, 20, 0.5)]


def _overlaps(gold: dict, p: Finding) -> bool:
    return gold["entity"] == p.entity and p.start < gold["end"] and gold["start"] < p.end


@needs_corpus("pii-dev.jsonl")
def test_dev_corpus_recall_and_precision() -> None:
    gold = pred = hits = found = 0
    with _CORPUS.open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            spans, predicted = row["spans"], find_pii(row["text"])
            gold += len(spans)
            pred += len(predicted)
            hits += sum(any(_overlaps(s, p) for s in spans) for p in predicted)
            found += sum(any(_overlaps(s, p) for p in predicted) for s in spans)
    assert gold > 800 and pred > 0
    assert found / gold >= 0.98
    assert hits / pred >= 0.98
