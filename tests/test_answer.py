"""Assembling an answer from stream chunks: the text as the client saw it, read at any point."""

from __future__ import annotations

from wardgate.answer import absorb_chunk
from wardgate.exchange import Response


def _delta(text: str) -> dict:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


def test_streamed_text_reads_whole_at_every_point() -> None:
    resp = Response(status=200)
    pieces = [f"t{i} " for i in range(5000)]
    seen = ""
    for i, piece in enumerate(pieces):
        assert absorb_chunk(resp, _delta(piece)) == piece
        seen += piece
        if i % 397 == 0:  # a checkpoint reads the text mid-stream; later pieces still land after it
            assert resp.text == seen
    absorb_chunk(resp, {"choices": [{"index": 1, "delta": {"content": "other choice"}}]})
    absorb_chunk(resp, {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    assert resp.text == "".join(pieces) and resp.finish_reason == "stop"


def test_setting_the_text_replaces_what_was_streamed() -> None:
    resp = Response(text="start ")
    resp.append_text("more")
    assert resp.text == "start more"
    resp.append_text(" lost")
    resp.text = "rewritten"  # a stage that rewrites the answer
    assert resp.text == "rewritten"
    resp.append_text("!")
    assert resp.text == "rewritten!"
