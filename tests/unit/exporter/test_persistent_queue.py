"""The write-ahead journal behind the persistent queue, on a real directory."""

from __future__ import annotations

import asyncio

import pytest

from lipservice_otel.exporter.config import PersistentQueueConfig
from lipservice_otel.exporter.journal import (
    KIND_DATA,
    Journal,
    decode_entries,
    encode_entry,
    pending_entries,
)

MIB = 1024 * 1024


def journal_config(path, **overrides) -> PersistentQueueConfig:
    return PersistentQueueConfig(directory=str(path), **overrides)


def test_torn_or_corrupt_tail_ends_the_segment():
    first = encode_entry(KIND_DATA, 1, 3, b"first payload")
    second = encode_entry(KIND_DATA, 2, 1, b"second payload")
    entries, intact = decode_entries(first + second[:-4])
    assert [seq for _, seq, _, _ in entries] == [1]
    assert intact == len(first)
    flipped = bytearray(first + second)
    flipped[-1] ^= 0xFF
    entries, _ = decode_entries(bytes(flipped))
    assert [seq for _, seq, _, _ in entries] == [1]


def test_done_entries_are_not_replayed(tmp_path):
    async def scenario():
        journal = Journal(journal_config(tmp_path))
        assert journal.open() == []
        seqs = [journal.append(f"payload {n}".encode(), n + 1) for n in range(5)]
        await journal.durable(seqs[-1])
        journal.done([seqs[1], seqs[3]])
        # No close(): as after kill -9, only what reached the kernel counts.
        reopened = Journal(journal_config(tmp_path))
        replay = reopened.open()
        assert [(e.seq, e.payload, e.records) for e in replay] == [
            (1, b"payload 0", 1),
            (3, b"payload 2", 3),
            (5, b"payload 4", 5),
        ]
        assert reopened.append(b"after restart", 1) == 6  # sequence numbers keep growing
        await reopened.close()
        await journal.close()

    asyncio.run(scenario())


def test_sequence_numbers_survive_a_journal_left_with_only_done_marks(tmp_path):
    async def scenario():
        first_run = Journal(journal_config(tmp_path))
        first_run.open()
        first_run.append(b"a", 1), first_run.append(b"b", 1)
        # Killed; the next run replays both, exports them and is killed in turn: its segment
        # holds only the done marks of seqs 1 and 2, whose data segment is deleted.
        second_run = Journal(journal_config(tmp_path))
        assert [e.seq for e in second_run.open()] == [1, 2]
        second_run.done([1, 2])
        assert [e.name for e in tmp_path.glob("*.wal")] == [f"{3:020d}.wal"]
        third_run = Journal(journal_config(tmp_path))
        assert third_run.open() == []
        # A reused seq 1 would be read back as done by the mark above: lost after a crash.
        assert third_run.append(b"c", 1) == 3
        fourth_run = Journal(journal_config(tmp_path))
        assert [(e.seq, e.payload) for e in fourth_run.open()] == [(3, b"c")]
        for journal in (first_run, second_run, third_run, fourth_run):
            await journal.close()

    asyncio.run(scenario())


def test_segments_roll_and_done_ones_are_deleted(tmp_path):
    async def scenario():
        journal = Journal(journal_config(tmp_path, segment_bytes=MIB))
        journal.open()
        chunk = b"x" * (256 * 1024)
        seqs = [journal.append(chunk, 1) for _ in range(12)]  # about 3 segments
        assert len(list(tmp_path.glob("*.wal"))) >= 3
        journal.done(seqs[4:])  # the oldest requests are still pending: nothing deleted
        assert len(list(tmp_path.glob("*.wal"))) >= 3
        journal.done(seqs[:4])
        journal.append(b"y", 1)
        journal.append(chunk * 4, 1)  # rolls again, after which only the active segment stays
        journal.append(b"z", 1)
        segments = sorted(tmp_path.glob("*.wal"))
        assert len(segments) <= 2
        pending = pending_entries([path.read_bytes() for path in segments])
        assert sum(len(entry.payload) for entry in pending) == 1 + 4 * len(chunk) + 1
        await journal.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("fsync", ["always", "interval", "never"])
def test_every_fsync_policy_answers_and_replays(tmp_path, fsync):
    async def scenario():
        journal = Journal(journal_config(tmp_path, fsync=fsync, fsync_interval_s=0.05))
        journal.open()
        seqs = [journal.append(b"p", 1) for _ in range(50)]
        await asyncio.gather(*(journal.durable(seq) for seq in seqs))
        await asyncio.sleep(0.1)
        await journal.close()
        assert len(Journal(journal_config(tmp_path)).open()) == 50

    asyncio.run(scenario())
