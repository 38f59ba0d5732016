"""In-process store, optionally persisted to a snapshot file (written atomically)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from google.protobuf.message import DecodeError

from lipservice_otel._proto.lipservice.v1 import control_pb2
from lipservice_otel.policy.codec import policy_from_proto, policy_to_proto
from lipservice_otel.policy.model import Policy
from lipservice_otel.store import clear_rules, without_rules
from lipservice_otel.store.config import DEFAULT_HISTORY_RULES_VERSIONS
from lipservice_otel.validation import ConfigError

# File format: this magic, then two length-prefixed blobs: the policy history (a serialized
# lipservice.v1.HistoryResponse, newest first) and the analysis state snapshot (state.py).
SNAPSHOT_MAGIC = b"LSV1"


class MemoryStore:
    def __init__(
        self,
        snapshot_file: str | None,
        history_limit: int,
        history_rules_versions: int = DEFAULT_HISTORY_RULES_VERSIONS,
    ) -> None:
        self._snapshot_file = snapshot_file
        self._history_limit = history_limit
        self._rules_versions = history_rules_versions
        self._history: list[Policy] = []
        self._state: bytes | None = None
        # Without a snapshot file nothing reads the state back: this process is its only
        # reader, and it holds the state itself.
        self.keeps_state = bool(snapshot_file)
        # One thread: snapshots replace the file in the order they were taken, so one that was
        # cancelled while writing cannot land over a newer one.
        self._writer = ThreadPoolExecutor(1, "snapshot") if snapshot_file else None
        if snapshot_file and os.path.exists(snapshot_file):
            self._read_snapshot(snapshot_file)

    async def latest_policy(self) -> Policy | None:
        return self._history[0] if self._history else None

    async def save_policy(self, policy: Policy) -> None:
        self._history.insert(0, policy)
        del self._history[self._history_limit :]
        if len(self._history) > self._rules_versions:
            older = self._rules_versions
            self._history[older] = without_rules(self._history[older])

    async def history(self, limit: int) -> list[Policy]:
        return self._history[:limit]

    async def load_state(self) -> bytes | None:
        return self._state

    async def save_state(self, state: bytes) -> None:
        self._state = state

    async def acquire_writer(self, owner: str) -> bool:
        return True  # one process, one writer

    async def watch(self, on_policy: Callable[[Policy], Awaitable[None]]) -> None:
        await asyncio.Event().wait()  # nobody else writes to this store

    async def close(self) -> None:
        try:
            await self.snapshot()
        finally:
            if self._writer is not None:
                self._writer.shutdown(wait=False)

    async def snapshot(self) -> None:
        """Write history and state to the snapshot file, off the event loop; raises OSError."""
        if self._writer is None:
            return
        # Taken on the loop, so the file holds one moment; policies are immutable values.
        history, state = list(self._history), self._state
        await asyncio.get_running_loop().run_in_executor(
            self._writer, write_snapshot, self._snapshot_file, history, state
        )

    def _read_snapshot(self, path: str) -> None:
        with open(path, "rb") as handle:
            payload = handle.read()
        if not payload.startswith(SNAPSHOT_MAGIC):
            raise ConfigError(f"store.snapshot_file: {path} is not a lipservice snapshot")
        try:
            history, rest = _unframe(payload[len(SNAPSHOT_MAGIC) :])
            state, _ = _unframe(rest)
            versions = control_pb2.HistoryResponse.FromString(history).versions
        except (ValueError, DecodeError) as exc:
            raise ConfigError(f"store.snapshot_file: {path} is damaged: {exc}") from None
        for older in versions[self._rules_versions :]:
            clear_rules(older)
        self._history = [policy_from_proto(v) for v in versions[: self._history_limit]]
        self._state = state or None


def write_snapshot(path: str, history: list[Policy], state: bytes | None) -> None:
    """Temp file, fsync, rename: the file is the old snapshot or the new one, never torn, and
    a failure leaves no temp file behind."""
    message = control_pb2.HistoryResponse(versions=[policy_to_proto(p) for p in history])
    payload = SNAPSHOT_MAGIC + _frame(message.SerializeToString()) + _frame(state or b"")
    fd, temporary = tempfile.mkstemp(
        dir=os.path.dirname(os.path.abspath(path)), prefix=".snapshot-"
    )
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _frame(blob: bytes) -> bytes:
    return len(blob).to_bytes(8, "big") + blob


def _unframe(payload: bytes) -> tuple[bytes, bytes]:
    size = int.from_bytes(payload[:8], "big")
    if len(payload) < 8 + size:
        raise ValueError("store snapshot is truncated")
    return payload[8 : 8 + size], payload[8 + size :]
