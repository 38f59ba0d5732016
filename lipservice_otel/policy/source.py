"""Where the policy comes from until the analysis loop supplies one: a YAML file, re-read on
change. A file that becomes invalid is reported and ignored: the last good policy stays."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator

import yaml

from lipservice_otel.policy.document import PolicyError, policy_from_document
from lipservice_otel.policy.model import Policy

log = logging.getLogger(__name__)


def read_policy_file(path: str, version: int) -> Policy:
    try:
        with open(path, encoding="utf-8") as handle:
            document = yaml.safe_load(handle) or {}
    except OSError as exc:
        raise PolicyError(f"policy file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"policy file {path}: not valid YAML: {exc}") from None
    try:
        return policy_from_document(document, version)
    except PolicyError as exc:
        raise PolicyError(f"policy file {path}: {exc}") from None


class PolicyFileWatcher:
    """Polls the file's mtime and size; yields each new valid version of it."""

    def __init__(self, path: str, interval_s: float, version: int) -> None:
        self._path = path
        self._interval_s = interval_s
        self._version = version
        self._stamp = self._file_stamp()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self._path)
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def check(self) -> Policy | None:
        """The new policy if the file changed and still holds a valid one."""
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        try:
            policy = read_policy_file(self._path, self._version + 1)
        except PolicyError as exc:
            log.error("%s; keeping policy version %d", exc, self._version)
            return None
        self._version = policy.version
        log.info("policy version %d loaded from %s", policy.version, self._path)
        return policy

    async def changes(self) -> AsyncIterator[Policy]:
        """Every new version, forever. The consumer handles one before the next check, so
        edits are applied in order and a slow consumer never piles up work."""
        while True:
            await asyncio.sleep(self._interval_s)
            policy = self.check()
            if policy is not None:
                yield policy
