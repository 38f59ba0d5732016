"""`pip install` as a user does it, from a clean tree: no make, no lipservice_otel/_proto.

The tree is copied without generated stubs, virtualenvs, git data or caches; an sdist is made
from it and a wheel from the sdist in pip's isolated build environment (what `python -m build`
and `pip install <sdist>` do), so the stubs must come from the package build and the .proto
files must be in the sdist. The wheel goes into a fresh venv (dependencies from the index, pip's
cache makes it quick), and the installed commands, run from outside the tree, must work: both
`--help`s, a `policy show` over the control plane (the stubs at work), and one log record sent
by the installed `otel-gen` through the installed `lipservice-otel serve` to a gRPC sink here.

Self-contained on purpose (its own sink and ports). Something missing on the machine (no venv
module, no index) skips it, except under CI=true where it fails.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc

from tests.support.ci import missing

ROOT = Path(__file__).resolve().parents[2]
STUBS = ("control_pb2.py", "control_pb2_grpc.py", "control_pb2.pyi")
# Not part of a clean clone: local, generated or cached (the first set only at the top).
NOT_IN_A_CLONE_AT_ROOT = {".git", ".venv", "venv", "build", "dist"}
NOT_IN_A_CLONE = {".pytest_cache", ".ruff_cache", ".mypy_cache", ".hypothesis", "__pycache__"}
# Signs that pip could not reach an index or a build requirement, not that our build broke.
NO_INDEX = (
    "No matching distribution found",
    "Could not find a version that satisfies",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Network is unreachable",
)
BODY = "wheel install check: payment 42 failed"

# The first test to ask for the installed venv pays for the build and the install (pip's cache
# makes it ~30 s; a cold cache downloads the dependencies).
pytestmark = pytest.mark.timeout(300)


def clean_copy(destination: Path) -> Path:
    def ignore(directory: str, names: list[str]) -> set[str]:
        ignored = {n for n in names if n in NOT_IN_A_CLONE or n.endswith(".egg-info")}
        if Path(directory) == ROOT:
            ignored |= NOT_IN_A_CLONE_AT_ROOT & set(names)
        if Path(directory) == ROOT / "lipservice_otel":
            ignored.add("_proto")
        if Path(directory) == ROOT / "bench":
            ignored.add("results")
        return ignored

    shutil.copytree(ROOT, destination, ignore=ignore, symlinks=True)
    assert not (destination / "lipservice_otel" / "_proto").exists()
    return destination


def user_env() -> dict[str, str]:
    """The environment of a user's shell: nothing that points at this repository or its venv."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"):
        env.pop(name, None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def run(
    command: list[str], cwd: Path, timeout: float = 240, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(c) for c in command],
        cwd=cwd,
        env={**user_env(), **(extra_env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def pip(
    python: Path, *arguments: str | Path, cwd: Path, extra_env: dict[str, str] | None = None
) -> None:
    done = run([python, "-m", "pip", *arguments], cwd=cwd, extra_env=extra_env)
    if done.returncode != 0:
        output = done.stdout + done.stderr
        if any(sign in output for sign in NO_INDEX):
            missing(f"pip cannot reach what it needs: {output[-2000:]}")
        raise AssertionError(f"pip {' '.join(map(str, arguments))} failed:\n{output}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Sink(logs_service_pb2_grpc.LogsServiceServicer):
    """A downstream OTLP/gRPC LogsService: every record it receives lands in `records`."""

    def __init__(self) -> None:
        self.records: queue.Queue = queue.Queue()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(self, self.server)
        self.endpoint = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"

    def Export(self, request, context):
        for resource_logs in request.resource_logs:
            for scope_logs in resource_logs.scope_logs:
                for record in scope_logs.log_records:
                    self.records.put((resource_logs.resource, record))
        return logs_service_pb2.ExportLogsServiceResponse()


class Output:
    """The lines of a process's merged stdout/stderr, read on a thread so waits have deadlines."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._new: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line)
            self._new.put(line)
        self._new.put(None)

    def wait_for(self, needle: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._new.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            if needle in line:
                return line
        raise AssertionError(f"{needle!r} not seen; output was:\n{self.text()}")

    def text(self) -> str:
        return "".join(self.lines)


@pytest.fixture(scope="module")
def sdist(tmp_path_factory) -> Path:
    """The sdist of a clean copy of the tree."""
    work = tmp_path_factory.mktemp("build")
    tree = clean_copy(work / "tree")
    # The sdist needs no build requirement but setuptools, which this venv has (grpcio-tools
    # depends on it); pip cannot make one.
    make_sdist = (
        f"from setuptools import build_meta; build_meta.build_sdist({str(work / 'sdist')!r})"
    )
    done = run([sys.executable, "-c", make_sdist], cwd=tree)
    if "No module named 'setuptools'" in done.stderr:
        missing("setuptools is not installed here to make the sdist")
    assert done.returncode == 0, done.stdout + done.stderr
    (sdist,) = (work / "sdist").glob("lipservice_otel-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    assert any(n.endswith("/proto/lipservice/v1/control.proto") for n in names), names
    assert not any("/lipservice_otel/_proto" in n for n in names), "stubs are built, not shipped"
    # The compiled sampler's sources, never a built extension.
    assert any(n.endswith("/lipservice_otel/sampling/_native.c") for n in names), names
    assert any(n.endswith("/lipservice_otel/sampling/_vendor/xxhash.h") for n in names), names
    assert not any(n.endswith(".so") for n in names), names
    return sdist


def native_extension(name: str) -> bool:
    return name.startswith("lipservice_otel/sampling/_native.") and name.endswith(".so")


def wheel_from(sdist: Path, work: Path, extra_env: dict[str, str] | None = None) -> Path:
    pip(
        Path(sys.executable),
        *("wheel", "--no-deps", "--wheel-dir", work / "wheels", sdist),
        cwd=work,
        extra_env=extra_env,
    )
    (built,) = (work / "wheels").glob("lipservice_otel-*.whl")
    return built


@pytest.fixture(scope="module")
def wheel(sdist, tmp_path_factory) -> Path:
    """The wheel built from the sdist, with the compiled sampler."""
    built = wheel_from(sdist, tmp_path_factory.mktemp("wheel"))
    with zipfile.ZipFile(built) as archive:
        names = set(archive.namelist())
    for stub in STUBS:
        assert f"lipservice_otel/_proto/lipservice/v1/{stub}" in names, sorted(names)
    assert any(native_extension(n) for n in names), sorted(names)
    return built


def test_without_a_compiler_the_wheel_builds_without_the_extension(sdist, tmp_path):
    built = wheel_from(sdist, tmp_path, {"CC": "false"})
    with zipfile.ZipFile(built) as archive:
        names = set(archive.namelist())
    assert "lipservice_otel/sampling/compiled.py" in names
    assert not any(native_extension(n) for n in names)


def fresh_venv(path: Path, wheel: Path, *pip_options: str | Path) -> Path:
    """bin/ of a new venv (no site-packages of ours) into which pip installed the wheel."""
    done = run([sys.executable, "-m", "venv", path], cwd=path.parent)
    if done.returncode != 0:
        missing(f"cannot create a venv with pip: {done.stdout + done.stderr}")
    pip(path / "bin" / "python", "install", "-q", *pip_options, wheel, cwd=path.parent)
    return path / "bin"


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """bin/ of a fresh venv holding the wheel and the newest dependencies, as `pip install`."""
    return fresh_venv(tmp_path_factory.mktemp("venv") / "venv", wheel)


def runtime_floors(wheel: Path) -> dict[str, str]:
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        text = archive.read(metadata).decode()
    return dict(re.findall(r"^Requires-Dist: (grpcio|protobuf)>=([\w.]+)\s*$", text, re.M))


def test_installed_commands_answer_help(installed, tmp_path):
    for command in (["lipservice-otel", "serve", "--help"], ["otel-gen", "--help"]):
        done = run([installed / command[0], *command[1:]], cwd=tmp_path, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "usage:" in done.stdout
    done = run(
        [installed / "python", "-c", "import lipservice_otel._proto as p; print(p.__file__)"],
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_relative_to(installed.parent), "imported from the venv"
    check = "from lipservice_otel.sampling import _native as n; print(n.__file__)"
    done = run([installed / "python", "-c", check], cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_relative_to(installed.parent), "the compiled sampler"


def test_installed_serve_forwards_a_record_sent_by_installed_otel_gen(installed, tmp_path):
    sink = Sink()
    sink.server.start()
    grpc_port, control_port = free_port(), free_port()
    command = [
        installed / "lipservice-otel", "serve",
        "--grpc-endpoint", f"127.0.0.1:{grpc_port}", "--http-endpoint", "",
        "--metrics-endpoint", "", "--exporter", "otlp", "--otlp-endpoint", sink.endpoint,
        "--set", f"control.listen=127.0.0.1:{control_port}",
        "--set", "exporter.queue.batch_timeout_s=0.05",
    ]  # fmt: skip
    serve = subprocess.Popen(
        [str(c) for c in command],
        cwd=tmp_path,
        env=user_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = Output(serve.stdout)
        output.wait_for("lipservice-otel serving", timeout_s=60)

        # The control plane answers through the generated stubs.
        policy = run(
            [installed / "lipservice-otel", "policy", "--control-plane",
             f"127.0.0.1:{control_port}", "show"],
            cwd=tmp_path, timeout=60,
        )  # fmt: skip
        assert policy.returncode == 0, policy.stdout + policy.stderr

        gen = run(
            [installed / "otel-gen", "logs", "--otlp-insecure",
             "--otlp-endpoint", f"127.0.0.1:{grpc_port}", "--logs", "1", "--workers", "1",
             "--service", "wheel-install", "--body", BODY,
             "--severity-text", "Error", "--severity-number", "17"],
            cwd=tmp_path, timeout=60,
        )  # fmt: skip
        assert gen.returncode == 0, gen.stdout + gen.stderr

        try:
            resource, record = sink.records.get(timeout=30)
        except queue.Empty:
            raise AssertionError(
                f"nothing reached the sink; serve said:\n{output.text()}"
            ) from None
        assert record.body.string_value == BODY
        attributes = {kv.key: kv.value for kv in record.attributes}
        assert attributes["lipservice.reason"].string_value == "severity"
        assert attributes["lipservice.pattern_id"].string_value
        assert attributes["sampling.adjusted_count"].double_value == 1.0
        service = {kv.key: kv.value.string_value for kv in resource.attributes}["service.name"]
        assert service == "wheel-install"
        assert sink.records.empty(), "one record sent, one forwarded"

        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=30) == 0, output.text()
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait(timeout=10)
        serve.stdout.close()
        sink.server.stop(0)


def test_stubs_load_with_the_oldest_grpcio_and_protobuf_the_wheel_allows(wheel, tmp_path):
    # The generated code refuses a grpcio older than the grpcio-tools that wrote it and a
    # protobuf older than its gencode: the floors in pyproject.toml must follow the build pin.
    floors = runtime_floors(wheel)
    assert set(floors) == {"grpcio", "protobuf"}, floors
    constraints = tmp_path / "floors.txt"
    constraints.write_text("".join(f"{name}=={version}\n" for name, version in floors.items()))
    bin_dir = fresh_venv(tmp_path / "venv", wheel, "--constraint", constraints)
    check = (
        "import grpc, google.protobuf as p; "
        "from lipservice_otel._proto.lipservice.v1 import control_pb2, control_pb2_grpc; "
        "import lipservice_otel.app.cli; print(grpc.__version__, p.__version__)"
    )
    done = run([bin_dir / "python", "-W", "error", "-c", check], cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.split() == [floors["grpcio"], floors["protobuf"]]
    done = run([bin_dir / "lipservice-otel", "serve", "--help"], cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
