"""Where the policy comes from until the analysis loop supplies one: a YAML file, re-read on
change. A file that becomes invalid is reported and ignored: the last good policy stays."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

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
    def __init__(
        self, path: str, interval_s: float, on_change: Callable[[Policy], None], version: int
    ) -> None:
        self._path = path
        self._interval_s = interval_s
        self._on_change = on_change
        self._version = version
        self._stamp = self._file_stamp()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self._path)
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def check(self) -> bool:
        """Reload if the file changed; True when a new policy was installed."""
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            policy = read_policy_file(self._path, self._version + 1)
        except PolicyError as exc:
            log.error("%s; keeping policy version %d", exc, self._version)
            return False
        self._version = policy.version
        self._on_change(policy)
        log.info("policy version %d loaded from %s", policy.version, self._path)
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            self.check()
