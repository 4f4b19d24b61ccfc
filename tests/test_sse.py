"""Splitting an upstream byte stream into SSE events, however the network cuts it."""

from __future__ import annotations

import random

import pytest

from wardgate.sse import EventSplitter, EventTooLarge

STREAM = (b'data: {"a":1}\n\n: a comment\n\ndata: {"b":2}\r\n\r\nevent: x\ndata: {"c":3}\n\n\n\n'
          b'data: [DONE]\n\n')
EVENTS = [b'data: {"a":1}', b": a comment", b'data: {"b":2}', b'event: x\ndata: {"c":3}', b"data: [DONE]"]


def test_every_cut_of_the_stream_gives_the_same_events():
    rng = random.Random(7)
    for _ in range(500):
        cuts = sorted(rng.sample(range(1, len(STREAM)), rng.randint(0, 12)))
        splitter, events = EventSplitter(), []
        for start, end in zip([0, *cuts], [*cuts, len(STREAM)]):
            events += splitter.feed(STREAM[start:end])
        events += splitter.close()
        assert events == EVENTS, cuts


def test_an_unterminated_last_event_is_given_at_the_close_and_blank_rest_is_not():
    splitter = EventSplitter()
    assert splitter.feed(b"data: 1\n\ndata: 2") == [b"data: 1"]
    assert splitter.close() == [b"data: 2"]
    splitter = EventSplitter()
    assert splitter.feed(b"data: 1\n\n\n") == [b"data: 1"] and splitter.close() == []


def test_an_event_that_never_ends_is_cut_at_the_cap():
    splitter = EventSplitter(max_event_bytes=1000)
    assert splitter.feed(b"data: " + b"x" * 900) == []
    with pytest.raises(EventTooLarge):
        splitter.feed(b"x" * 200)
