"""The page's static files ship in the wheel: pyproject's package data covers each of them."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import lipservice_otel.ui

ROOT = Path(__file__).resolve().parents[3]
UI = Path(lipservice_otel.ui.__file__).parent


def test_every_static_file_is_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["lipservice_otel.ui"]
    files = [p.relative_to(UI).as_posix() for p in (UI / "static").rglob("*") if p.is_file()]
    assert {"static/index.html", "static/app.js", "static/style.css"} <= set(files)
    for name in files:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name
