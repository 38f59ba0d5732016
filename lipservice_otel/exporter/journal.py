"""Write-ahead journal behind the sending queue: what was acknowledged survives a crash.

Every queued request is appended to the current segment file before its sender is answered;
once exported (or given up on) its sequence number is appended as done. On start the
segments are read back and every request not marked done is queued again, so a kill -9
loses nothing acknowledged; a request exported just before the crash but not yet marked done
is sent again (at least once, never lost).

Segments are append-only files `<first seq>.wal` in the directory. Each entry is a header
(kind, sequence number, records, length, CRC-32 of the rest) and a body; a torn or corrupt
entry ends the reading of its segment (it was being written when the process died, so its
sender was never answered). A segment is deleted once it and every older segment hold
nothing pending, which also keeps every "done" mark until the entries it refers to are gone.

Durability (`fsync`): `always` answers senders after an fsync shared by everything written
meanwhile (group commit); `interval` and `never` answer once the write reached the kernel,
which survives the death of this process but not of the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from lipservice_otel.exporter.config import PersistentQueueConfig

KIND_DATA = 1
KIND_DONE = 2
# kind, seq, records, body length, crc32(kind..body)
_HEADER = struct.Struct("<BQII")
_CRC = struct.Struct("<I")
_SEQS = struct.Struct("<Q")
SEGMENT_SUFFIX = ".wal"

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    payload: bytes
    records: int


def encode_entry(kind: int, seq: int, records: int, body: bytes) -> bytes:
    header = _HEADER.pack(kind, seq, records, len(body))
    return header + _CRC.pack(zlib.crc32(body, zlib.crc32(header))) + body


def decode_entries(data: bytes) -> tuple[list[tuple[int, int, int, bytes]], int]:
    """Entries (kind, seq, records, body) up to the first torn or corrupt one, and the byte
    offset where the intact part ends."""
    entries = []
    offset = 0
    fixed = _HEADER.size + _CRC.size
    while offset + fixed <= len(data):
        kind, seq, records, length = _HEADER.unpack_from(data, offset)
        (crc,) = _CRC.unpack_from(data, offset + _HEADER.size)
        end = offset + fixed + length
        if end > len(data) or kind not in (KIND_DATA, KIND_DONE):
            break
        body = data[offset + fixed : end]
        header = data[offset : offset + _HEADER.size]
        if zlib.crc32(body, zlib.crc32(header)) != crc:
            break
        entries.append((kind, seq, records, body))
        offset = end
    return entries, offset


def pending_entries(segments: list[bytes]) -> list[Entry]:
    """The data entries of the segments (oldest first) not marked done, in sequence order."""
    data: dict[int, Entry] = {}
    done: set[int] = set()
    for segment in segments:
        entries, _ = decode_entries(segment)
        for kind, seq, records, body in entries:
            if kind == KIND_DATA:
                data[seq] = Entry(seq, body, records)
            else:
                done.update(seq for (seq,) in _SEQS.iter_unpack(body))
    return [data[seq] for seq in sorted(data) if seq not in done]


class Journal:
    def __init__(self, config: PersistentQueueConfig) -> None:
        assert config.directory, "a journal needs exporter.queue.persistent.directory"
        self._config = config
        self._directory = Path(config.directory)
        self._next_seq = 1
        self._fd: int | None = None
        self._segment_size = 0
        # segment first seq -> pending data entries in it (the active one last)
        self._segments: OrderedDict[int, int] = OrderedDict()
        self._segment_of: dict[int, int] = {}
        self._written = 0  # highest seq handed to the kernel
        self._synced = 0  # highest seq known to be on disk
        self._sync: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None

    def open(self) -> list[Entry]:
        """Read what a previous run left, start a new segment; returns the requests to replay."""
        self._directory.mkdir(parents=True, exist_ok=True)
        paths = sorted(self._directory.glob(f"*{SEGMENT_SUFFIX}"), key=_first_seq)
        contents = [path.read_bytes() for path in paths]
        pending = pending_entries(contents)
        for path, content in zip(paths, contents, strict=True):
            entries, intact = decode_entries(content)
            if intact < len(content):
                log.warning("%s: ignoring %d torn bytes at the end", path, len(content) - intact)
            first = _first_seq(path)
            self._segments[first] = 0
            # Sequence numbers never go back, even when every data entry is deleted: a done
            # mark left in a segment would otherwise mark a new request with a reused number
            # done. A segment is named after the next seq when it was started.
            self._next_seq = max(self._next_seq, first, _highest_seq(entries) + 1)
        for entry in pending:
            first = max(first for first in self._segments if first <= entry.seq)
            self._segments[first] += 1
            self._segment_of[entry.seq] = first
        self._written = self._synced = self._next_seq - 1
        self._collect()
        self._roll()
        if self._config.fsync == "interval":
            self._ticker = asyncio.get_running_loop().create_task(self._sync_every_interval())
        return pending

    def append(self, payload: bytes, records: int) -> int:
        """Write one request; returns its sequence number. Raises OSError (disk full...)."""
        if self._segment_size >= self._config.segment_bytes:
            self._roll()
        seq = self._next_seq
        self._write(encode_entry(KIND_DATA, seq, records, payload))
        self._next_seq += 1
        self._written = seq
        first = next(reversed(self._segments))
        self._segments[first] += 1
        self._segment_of[seq] = first
        return seq

    async def durable(self, seq: int) -> None:
        """Return once entry `seq` is as durable as the fsync policy promises."""
        if self._config.fsync != "always":
            return
        while self._synced < seq:
            if self._sync is None:
                self._sync = asyncio.get_running_loop().create_task(self._fsync())
            await asyncio.shield(self._sync)

    def done(self, seqs: list[int]) -> None:
        """Mark requests exported or given up on; drop segments that hold nothing pending."""
        if not seqs:
            return
        body = b"".join(_SEQS.pack(seq) for seq in seqs)
        try:
            self._write(encode_entry(KIND_DONE, 0, 0, body))
        except OSError as exc:
            # Without the mark they are sent again after a restart: duplicates, not loss.
            log.error("journal: cannot mark %d requests done: %s", len(seqs), exc)
        for seq in seqs:
            first = self._segment_of.pop(seq, None)
            if first is not None:
                self._segments[first] -= 1
        self._collect()

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._sync is not None:
            await asyncio.shield(self._sync)
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None

    def _write(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError:
            # A disk that fills mid-entry leaves it torn, and replay stops reading a segment
            # at its first torn entry: what is appended once space frees up would be lost
            # to the next crash. Cut the segment back to its last whole entry, or start
            # the next segment if even that fails.
            try:
                os.ftruncate(self._fd, self._segment_size)
            except OSError:
                self._segment_size = self._config.segment_bytes
            raise
        self._segment_size += len(data)

    def _roll(self) -> None:
        """Close the active segment (on disk first) and start the next one."""
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._synced = self._written
        first = self._next_seq
        path = self._directory / f"{first:020d}{SEGMENT_SUFFIX}"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._segment_size = os.fstat(self._fd).st_size
        self._segments.setdefault(first, 0)
        self._segments.move_to_end(first)
        _fsync_directory(self._directory)
        self._collect()

    def _collect(self) -> None:
        """Delete the oldest segments while they are not active and hold nothing pending."""
        while len(self._segments) > 1:
            first, pending = next(iter(self._segments.items()))
            if pending:
                return
            del self._segments[first]
            with contextlib.suppress(FileNotFoundError):
                (self._directory / f"{first:020d}{SEGMENT_SUFFIX}").unlink()

    async def _fsync(self) -> None:
        target, fd = self._written, self._fd
        try:
            await asyncio.to_thread(os.fsync, fd)
        except OSError:
            if fd == self._fd:
                raise
            # The segment was rolled meanwhile, and rolling synced it.
        finally:
            self._sync = None
        self._synced = max(self._synced, target)

    async def _sync_every_interval(self) -> None:
        while True:
            await asyncio.sleep(self._config.fsync_interval_s)
            if self._written > self._synced:
                try:
                    await self._fsync()
                except OSError as exc:
                    log.error("journal: fsync failed: %s", exc)


def _highest_seq(entries: list[tuple[int, int, int, bytes]]) -> int:
    """The highest sequence number the entries name, data entries and done marks alike."""
    highest = 0
    for kind, seq, _, body in entries:
        if kind == KIND_DATA:
            highest = max(highest, seq)
        elif body:
            highest = max(highest, max(done for (done,) in _SEQS.iter_unpack(body)))
    return highest


def _first_seq(path: Path) -> int:
    try:
        return int(path.name.removesuffix(SEGMENT_SUFFIX))
    except ValueError:
        return 0


def _fsync_directory(directory: Path) -> None:
    """Make a new segment's name durable, not just its contents."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
