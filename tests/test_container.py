"""The container's contract, played without Docker.

deploy/Dockerfile promises: dependencies installed from the hash-pinned lock, the package with
``--no-deps``; `notifier run` as a fixed non-root user on a read-only root filesystem, writing
only in the state volume; `notifier healthcheck` healthy while the scheduler runs and unhealthy
once it is wedged; SIGTERM exits 0 in time. This test builds that environment on this machine:

- a fresh virtual environment, installed the way the Dockerfile does it (the lock with
  ``--require-hashes --no-deps``, then the package from a copy of exactly what the Dockerfile
  COPYs, ``--no-deps``), once per session;
- the Dockerfile's runtime ``ENV`` lines, with /opt/notifier, /etc/notifier and
  /var/lib/notifier mapped to the venv, a config directory and a state directory;
- the daemon and the health command run as uid/gid 65534 (not root, no supplementary groups),
  the config directory read-only and owned by root, only the state directory writable.

Skipped, saying why, only when the package registry cannot be reached or no Python of the
lock's version can be run by an unprivileged user.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from notifier.demo.simulator import FakePostHog
from tests.factories import PROJECT, leaked
from tests.fakes import FakeSlack, WebhookReceiver
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
NOBODY = 65534
#: Where the image keeps things, and what stands for them here (see ``Image``).
IMAGE_VENV = "/opt/notifier"
IMAGE_CONFIG_DIR = "/etc/notifier"
IMAGE_STATE_DIR = "/var/lib/notifier"
#: pip's words for "could not reach the index": the only failure that skips instead of failing.
_OFFLINE = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Temporary failure in name "
    r"resolution|Name or service not known|Network is unreachable|Connection refused|"
    r"ConnectTimeoutError|Read timed out|No route to host|ProxyError|Could not fetch URL",
    re.IGNORECASE,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.name != "posix" or os.geteuid() != 0,
        reason="plays the container's non-root user (uid 65534), which needs the tests to run "
        "as root",
    ),
]


# --- the image -----------------------------------------------------------------------------


def dockerfile_runtime_env() -> dict[str, str]:
    """The ``ENV`` of the Dockerfile's last stage, as written (``$PATH`` unexpanded)."""
    lines = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    last_from = max(i for i, line in enumerate(lines) if line.startswith("FROM "))
    env: dict[str, str] = {}
    for line in lines[last_from:]:
        if line.startswith("ENV "):
            for pair in line[4:].split():
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def as_unprivileged() -> dict[str, Any]:
    """``subprocess`` arguments that run a child as uid/gid 65534 with no other groups."""
    return {"user": NOBODY, "group": NOBODY, "extra_groups": []}


def unprivileged_python() -> str | None:
    """A Python of this minor version that uid 65534 can run (this test's own interpreter may
    live under /root, which is closed to other users)."""
    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [
        os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
        f"/usr/local/bin/python{minor}",
        f"/usr/bin/python{minor}",
    ]
    for candidate in dict.fromkeys(candidates):
        if not os.path.exists(candidate):
            continue
        try:
            probe = subprocess.run(
                [candidate, "-c", "import sys, venv, ensurepip; print(sys.version_info[:2])"],
                capture_output=True,
                text=True,
                check=False,
                **as_unprivileged(),
            )
        except OSError:  # e.g. under /root, mode 0700
            continue
        if probe.returncode == 0 and probe.stdout.strip() == str(sys.version_info[:2]):
            return candidate
    return None


def pip(venv: Path, *args: str) -> None:
    """``<venv>/bin/python -m pip ARGS``; skip when the registry is unreachable, else fail."""
    # --retries: a connection failure is then always reported as such (a retry warning)
    command = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    done = subprocess.run(
        [*command, "--retries", "2", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    if done.returncode == 0:
        return
    output = done.stdout + done.stderr
    if "DO NOT MATCH THE HASHES" not in output and _OFFLINE.search(output):
        pytest.skip(f"the package registry is unreachable: pip {' '.join(args)}")
    raise AssertionError(f"pip {' '.join(args)} failed ({done.returncode}):\n{output[-4000:]}")


@dataclass(frozen=True)
class Image:
    """The built "image": a venv at ``venv`` standing for /opt/notifier."""

    base: Path
    venv: Path
    build_seconds: float

    @property
    def notifier(self) -> str:
        return str(self.venv / "bin" / "notifier")


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    python = unprivileged_python()
    if python is None:
        minor = f"{sys.version_info.major}.{sys.version_info.minor}"
        pytest.skip(f"no Python {minor} with venv and ensurepip that uid 65534 can run")
    base = Path(tempfile.mkdtemp(prefix="notifier-container-"))
    base.chmod(0o755)  # mkdtemp makes it 0700: the unprivileged user must reach inside
    try:
        started = time.monotonic()
        # What the Dockerfile COPYs, and nothing else (test_deploy checks the COPY lines).
        src = base / "src"
        src.mkdir()
        shutil.copy2(DEPLOY / "requirements.lock", src / "requirements.lock")
        shutil.copy2(ROOT / "pyproject.toml", src / "pyproject.toml")
        shutil.copy2(ROOT / "README.md", src / "README.md")
        shutil.copytree(
            ROOT / "notifier", src / "notifier", ignore=shutil.ignore_patterns("__pycache__")
        )
        venv = base / "opt-notifier"
        subprocess.run([python, "-m", "venv", str(venv)], check=True, capture_output=True)
        pip(venv, "install", "--require-hashes", "--no-deps", "-r", str(src / "requirements.lock"))
        pip(venv, "install", "--no-deps", str(src))
        # The lock is complete: with --no-deps nothing else came in, and nothing is missing.
        check = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "check"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, f"the lock misses dependencies:\n{check.stdout}"
        # As the Dockerfile does: no pip in the image, bytecode valid whatever the file times.
        pip(venv, "uninstall", "--yes", "pip", "setuptools")
        compile_all = [str(venv / "bin" / "python"), "-m", "compileall", "-q", "-f"]
        subprocess.run(
            [*compile_all, "--invalidation-mode", "unchecked-hash", str(venv / "lib")],
            check=True,
            capture_output=True,
        )
        shutil.rmtree(src)
        yield Image(base, venv, time.monotonic() - started)
    finally:
        shutil.rmtree(base, ignore_errors=True)


# --- helpers -------------------------------------------------------------------------------


Tree = dict[str, tuple[int, int, int, int]]


def tree(root: Path) -> Tree:
    """Every path under ``root`` with its mode, owner, size and mtime: a write changes it."""
    found: Tree = {}
    for path in [root, *root.rglob("*")]:
        st = path.lstat()
        size = 0 if stat.S_ISDIR(st.st_mode) else st.st_size
        found[str(path.relative_to(root))] = (st.st_mode, st.st_uid, size, st.st_mtime_ns)
    return found


def owned_by_nobody(*dirs: str, skip: Path) -> set[str]:
    """What the unprivileged user owns in the scratch places it could write to without a
    volume: it can create entries only in world-writable directories or its own, so only
    those are searched (``skip``: this test's own directory)."""
    found: set[str] = set()
    pending = [Path(d) for d in dirs if os.path.isdir(d)]
    while pending:
        directory = pending.pop()
        try:
            entries = list(directory.iterdir())
        except OSError:
            continue
        for path in entries:
            try:
                st = path.lstat()
            except OSError:
                continue
            if path == skip:
                continue
            if st.st_uid == NOBODY:
                found.add(str(path))
            writable = st.st_uid == NOBODY or st.st_mode & stat.S_IWOTH
            if stat.S_ISDIR(st.st_mode) and writable:
                pending.append(path)
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def container_config(
    config_dir: Path,
    state_dir: Path,
    posthog: FakePostHog,
    slack: FakeSlack,
    hook: WebhookReceiver,
    port: int,
) -> Path:
    """deploy/config.yaml pointed at the fakes, polling every second; written read-only."""
    config: dict[str, Any] = yaml.safe_load((DEPLOY / "config.yaml").read_text())
    assert config["state"]["path"] == f"{IMAGE_STATE_DIR}/state.db"
    config["state"]["path"] = str(state_dir / "state.db")
    config["posthog"].update(host=posthog.url, project_ids=[PROJECT], timeout="5s")
    config["poll"] = {"interval": "1s", "jitter": "0s", "deadline": "2s"}
    config["http"] = {"listen": f"127.0.0.1:{port}"}  # 9464, the image's, may be taken here
    config["delivery"].update(backoff_initial="0.1s", backoff_max="1s")
    config["sinks"]["product-channel"]["api_url"] = slack.api_url
    config["sinks"]["incident-bridge"]["url"] = hook.url
    path = config_dir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o444)
    config_dir.chmod(0o555)
    return path


# --- the test ------------------------------------------------------------------------------


def test_the_container_contract_as_an_unprivileged_user_on_a_read_only_root(
    image: Image,
    posthog: FakePostHog,
    slack: FakeSlack,
    receiver: WebhookReceiver,
    env: dict[str, str],
) -> None:
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="run-", dir=image.base))
    work.chmod(0o755)
    config_dir, state_dir = work / "etc-notifier", work / "var-lib-notifier"
    config_dir.mkdir()
    state_dir.mkdir(mode=0o750)
    os.chown(state_dir, NOBODY, NOBODY)  # the volume: the only place the user may write
    port = free_port()
    config = container_config(config_dir, state_dir, posthog, slack, receiver, port)

    # The Dockerfile's runtime ENV, its paths mapped to this machine's stand-ins, plus the
    # secrets (compose's env_file), and nothing inherited from this process.
    mapping = {
        IMAGE_VENV: str(image.venv),
        IMAGE_CONFIG_DIR: str(config_dir),
        IMAGE_STATE_DIR: str(state_dir),
    }
    run_env: dict[str, str] = {}
    for key, written in dockerfile_runtime_env().items():
        value = written.replace("$PATH", "/usr/local/bin:/usr/bin:/bin")
        for image_path, here in mapping.items():
            value = value.replace(image_path, here)
        run_env[key] = value
    assert run_env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert run_env["NOTIFIER_CONFIG"] == str(config)
    assert run_env["HOME"] == "/nonexistent"
    run_env.update(env)

    def healthcheck() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [image.notifier, "healthcheck"],  # config from $NOTIFIER_CONFIG, as in the image
            env=run_env,
            cwd=state_dir,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            **as_unprivileged(),
        )

    heartbeat = state_dir / "state.db.heartbeat"

    def beat() -> dict[str, Any]:
        try:
            return dict(json.loads(heartbeat.read_text()))
        except (OSError, ValueError):
            return {}

    venv_before, config_before = tree(image.venv), tree(config_dir)
    scratch = ("/tmp", "/var/tmp", "/dev/shm")
    scratch_before = owned_by_nobody(*scratch, skip=image.base)
    log = work / "daemon.log"

    with log.open("w") as log_file:
        daemon = subprocess.Popen(
            [image.notifier, "run"],  # the image's ENTRYPOINT + CMD
            env=run_env,
            cwd=state_dir,  # the image's WORKDIR
            stdout=log_file,
            stderr=subprocess.STDOUT,
            **as_unprivileged(),
        )
    try:
        # The first cycle records the listing; then the health command passes.
        wait_for(lambda: beat().get("last_finished") is not None, 20, "a first cycle")
        first = healthcheck()
        assert first.returncode == 0, first.stdout + first.stderr
        assert first.stdout.startswith("healthy"), first.stdout

        # It works as that user: a new report reaches the signed webhook.
        posthog.add_report(PROJECT, title="Checkout fails on Safari", status="ready")
        wait_for(lambda: len(receiver.received) >= 1, 20, "the new report's webhook")
        assert receiver.bodies()[0]["type"] == "signal_report.new"

        # The HTTP listener serves the probes and metrics.
        for path in ("/healthz", "/readyz", "/metrics"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
                assert answer.status == 200, path

        # A wedged scheduler: the process exists but attempts nothing. 3 intervals (3 s) later
        # the health command says so.
        daemon.send_signal(signal.SIGSTOP)
        wedged: list[subprocess.CompletedProcess[str]] = []

        def unhealthy() -> bool:
            wedged.append(healthcheck())
            return wedged[-1].returncode == 1

        wait_for(unhealthy, 30, "the health command to fail while the daemon is stopped")
        assert wedged[-1].stdout.startswith("unhealthy"), wedged[-1]

        # Resumed, it is healthy again; SIGTERM then ends it cleanly within 10 s.
        daemon.send_signal(signal.SIGCONT)
        wait_for(lambda: healthcheck().returncode == 0, 20, "healthy again after SIGCONT")
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=10)
        assert code == 0, log.read_text()[-3000:]
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGCONT)
            daemon.kill()
            daemon.wait()

    # Nothing written outside the state directory: the "image" and the config are unchanged,
    # and the user left nothing in the scratch directories a read-only root would not have.
    assert tree(image.venv) == venv_before, "the venv changed (bytecode? a cache?)"
    assert tree(config_dir) == config_before
    assert owned_by_nobody(*scratch, skip=image.base) - scratch_before == set()
    written = sorted(p.name for p in state_dir.iterdir())
    assert "state.db" in written
    assert "state.db.heartbeat" in written
    for path in state_dir.iterdir():
        assert path.stat().st_uid == NOBODY, path
        assert not leaked(path.read_bytes()), f"a secret in {path.name}"
    assert not leaked(log.read_text())
    took = time.monotonic() - started
    sys.stderr.write(
        f"\ncontainer contract: image built in {image.build_seconds:.1f}s, run {took:.1f}s, "
        f"state dir: {', '.join(written)}\n"
    )
