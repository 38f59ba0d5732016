"""A small filesystem of its own for a test: a tmpfs of a few MiB, mounted and always unmounted.

Needs root (CI runs as root). Under CI=true a mount that cannot be made fails the test
rather than skipping it, so the disk-full fault is never silently left untested.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.support.ci import missing


@contextlib.contextmanager
def small_tmpfs(directory: Path, size: str = "2m") -> Iterator[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        reason = f"cannot mount a {size} tmpfs: {mounted.stderr.strip() or mounted.returncode}"
        missing(reason)
    try:
        yield directory
    finally:
        if subprocess.run(["umount", str(directory)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(directory)], check=True)


def fill(directory: Path, leave_bytes: int) -> Path:
    """A file taking all the space of `directory`'s filesystem but `leave_bytes`."""
    filler = directory / "filler"
    free = os.statvfs(directory).f_bavail * os.statvfs(directory).f_frsize
    with open(filler, "wb") as handle:
        handle.write(b"\0" * max(0, free - leave_bytes))
    return filler
