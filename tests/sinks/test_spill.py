from __future__ import annotations

from pathlib import Path

from tests.sinks import trace_record
from wardgate.sinks.spill import SpillFile, spill_stem


async def test_append_read_commit_truncates_when_drained(tmp_path: Path) -> None:
    spill = SpillFile(tmp_path, "jsonl")
    spill.open()
    assert not spill.pending
    assert spill.append([trace_record(i) for i in range(5)]) == 0
    assert spill.pending

    head = await spill.read(3)
    assert [r["request_id"] for r in head.records] == ["r-000000", "r-000001", "r-000002"]
    spill.commit(head.end)
    assert spill.pending  # two left, file not truncated yet

    rest = await spill.read(100)
    assert [r["request_id"] for r in rest.records] == ["r-000003", "r-000004"]
    spill.commit(rest.end)
    assert not spill.pending
    assert spill.path.stat().st_size == 0
    spill.close()


async def test_offset_survives_a_restart_so_the_drained_head_is_not_resent(tmp_path: Path) -> None:
    first = SpillFile(tmp_path, "pg")
    first.open()
    first.append([trace_record(i) for i in range(4)])
    head = await first.read(2)
    first.commit(head.end)
    first.close()

    second = SpillFile(tmp_path, "pg")
    second.open()
    rest = await second.read(100)
    assert [r["request_id"] for r in rest.records] == ["r-000002", "r-000003"]
    second.close()


async def test_a_torn_last_line_counts_as_corrupt_and_later_appends_survive(tmp_path: Path) -> None:
    spill = SpillFile(tmp_path, "http")
    spill.path.write_bytes(b'{"request_id": "ok"}\n{"request_id": "to')
    spill.open()
    spill.append([{"request_id": "after"}])
    batch = await spill.read(100)
    assert [r["request_id"] for r in batch.records] == ["ok", "after"]
    assert batch.corrupt == 1
    spill.close()


def test_unserializable_records_are_reported_not_raised(tmp_path: Path) -> None:
    spill = SpillFile(tmp_path, "x")
    spill.open()
    assert spill.append([{"ok": 1}, {"bad": object()}]) == 1
    spill.close()


def test_stem_keeps_names_inside_the_directory() -> None:
    assert spill_stem("../etc/passwd") == ".._etc_passwd"
    assert spill_stem("postgres-2") == "postgres-2"
