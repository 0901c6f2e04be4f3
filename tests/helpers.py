"""Small helpers shared by the test modules."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

from notifier.cli.app import main
from notifier.config.settings import Settings
from notifier.runtime.daemon import Notifier
from tests.factories import leaked


def wait_for(
    condition: Callable[[], object],
    seconds: float = 20,
    what: str = "condition",
    *,
    poll: float = 0.05,
) -> None:
    """Wait until ``condition()`` is true; fail the test after ``seconds``. A bound, not a
    timing assertion: a fast machine passes sooner, a slow one still passes."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds:g} s: {what}")
        time.sleep(poll)


@contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """``env`` added to ``os.environ`` for the block, then the environment as it was."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def _logging_kept() -> Iterator[None]:
    """The root logger's handlers and level as they were, whatever ``logs.setup`` did."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    noisy = {name: logging.getLogger(name).level for name in ("apscheduler", "httpx", "httpcore")}
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        for name, was in noisy.items():
            logging.getLogger(name).setLevel(was)


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``notifier ARGS`` in this process (``cli.app.main``), with ``env`` added to the
    environment: its exit code and output, checked for leaked secrets. For the commands whose
    process is not what is tested (``run_notifier`` runs a real one)."""
    out, err = io.StringIO(), io.StringIO()
    with _environment(env), _logging_kept(), redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse: --version, --help, a usage error
            code = exc.code if isinstance(exc.code, int) else 1
    result = subprocess.CompletedProcess(["notifier", *args], code, out.getvalue(), err.getvalue())
    assert not leaked(result.stdout + result.stderr), f"{leaked(result.stdout + result.stderr)}"
    return result


def run_notifier(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``python -m notifier ARGS`` with ``env`` added to this environment; output captured and
    checked for leaked secrets."""
    result = subprocess.run(
        [sys.executable, "-m", "notifier", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert not leaked(result.stdout + result.stderr), f"{leaked(result.stdout + result.stderr)}"
    return result


def inject(path: Path, old: str, new: str) -> None:
    """Replace the first ``old`` in the file at ``path``, which must hold it, with ``new``: a
    key added to a written config, or a mistake put into it."""
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def assert_no_secrets(text: str, env: dict[str, str]) -> None:
    """No value of ``env`` and no recognisable secret appears in ``text``."""
    for name, secret in env.items():
        assert secret not in text, f"{name} leaked"
    assert not leaked(text), f"{leaked(text)} leaked"  # also the webhook path, whsec_'s base64


@contextmanager
def running(settings: Settings) -> Iterator[Notifier]:
    """``Notifier.run`` in a thread; stopped and closed afterwards. Fails the test if ``run``
    raised or its thread did not stop."""
    notifier = Notifier(settings)
    stop = threading.Event()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            notifier.run(stop)
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=run, name="notifier-under-test", daemon=True)
    thread.start()
    try:
        wait_for(lambda: notifier.started_at is not None or failed, 10, "run to start", poll=0.02)
        yield notifier
    finally:
        stop.set()
        thread.join(timeout=15)
        notifier.close()
    assert not thread.is_alive()
    assert not failed, failed
