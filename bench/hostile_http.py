"""Memory and time of the notifier's HTTP clients against hostile answers (issue 16, items 3–4).

Run ``python bench/hostile_http.py`` (not part of ``make test``; about 15 s). A raw TCP server on
127.0.0.1 plays each answer; each case runs in a fresh process (spawn), so its peak RSS
(``ru_maxrss``) is its own: the real client (PostHog listing, Slack bot sink, signed webhook
sink) makes one request and the outcome, the time taken and the peak RSS are printed.

Cases: a 512 MiB body (no length), a gzip bomb (about 0.5 MB on the wire, 512 MiB inflated),
a 512 MiB Slack answer, a webhook 500 whose body is that gzip bomb, and a server trickling one
byte every 0.2 s to a client with a 2 s timeout. Before issue 16 the first three peaked at
3.07 GB, 2.2 GB and 2.15 GB (the manifests allow 256 MiB) and the trickle ran until the server
stopped.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator

from notifier.config.settings import PostHogSettings, SlackSinkSettings, WebhookSinkSettings
from notifier.core.errors import NotifierError
from notifier.core.events import Event, EventType
from notifier.core.outbox import Delivery
from notifier.core.report import Links, Report
from notifier.posthog.client import PostHogClient
from notifier.sinks.slack.bot import SlackSink
from notifier.sinks.webhook import WebhookSink

MiB = 2**20
HEAD = "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}\r\n"


def endless(size: int) -> Iterator[bytes]:
    yield HEAD.format(status="200 OK", extra="Connection: close\r\n").encode()
    chunk = b" " * (1 * MiB)
    for _ in range(size // len(chunk)):
        yield chunk


def bomb(status: str) -> Callable[[], Iterator[bytes]]:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    body = b"".join([*(packer.compress(b" " * MiB) for _ in range(512)), packer.flush()])
    extra = f"Content-Encoding: gzip\r\nContent-Length: {len(body)}\r\n"
    return lambda: iter([HEAD.format(status=status, extra=extra).encode() + body])


def trickle() -> Iterator[bytes]:
    whole = HEAD.format(status="200 OK", extra="Content-Length: 200\r\n").encode() + b" " * 200
    for i in range(len(whole)):
        yield whole[i : i + 1]
        time.sleep(0.2)


def serve(answer: Callable[[], Iterator[bytes]]) -> str:
    """Start a server playing ``answer`` to every request; returns its origin."""
    listener = socket.create_server(("127.0.0.1", 0))

    def one(conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536) or b"\r\n\r\n"
            try:
                for chunk in answer():
                    conn.sendall(chunk)
            except OSError:
                pass  # the client hung up

    def accept() -> None:
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=one, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}"


def client_run(kind: str, origin: str, queue: mp.Queue[tuple[str, float, int]]) -> None:
    """In a fresh process: one request of ``kind`` to ``origin`` (the baseline RSS, about
    50 MiB, is the interpreter and the notifier's imports)."""
    report = Report.from_api({"id": "r1", "title": "t", "status": "ready"})
    delivery = Delivery(1, "s", Event.create(EventType.NEW, 1, report, None, {}), ("r",))
    links = Links("https://us.posthog.com")
    timeout = 2.0 if kind == "trickle" else 30.0
    started = time.monotonic()
    try:
        if kind == "slack":
            settings = SlackSinkSettings(
                name="s", token="xoxb-bench", channel="C0123456789", api_url=f"{origin}/api/"
            )
            SlackSink(settings.model_copy(update={"timeout": timeout}), links).send(delivery)
        elif kind == "webhook":
            hook = WebhookSinkSettings(name="s", url=f"{origin}/hook", timeout=timeout)
            WebhookSink(hook, links).send(delivery)
        else:
            posthog = PostHogSettings(
                host=origin, api_key="phx_bench", project_ids=(1,), timeout=timeout
            )
            PostHogClient(posthog, attempts=1).list_reports(1)
        outcome = "succeeded"
    except NotifierError as exc:
        outcome = str(exc)
    elapsed = time.monotonic() - started
    queue.put((outcome, elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))


def main() -> None:
    cases = [
        ("PostHog: 512 MiB body", "posthog", lambda: endless(512 * MiB)),
        ("PostHog: gzip bomb (512 MiB inflated)", "posthog", bomb("200 OK")),
        ("Slack bot: 512 MiB answer", "slack", lambda: endless(512 * MiB)),
        ("webhook: 500 + gzip bomb body", "webhook", bomb("500 Internal Server Error")),
        ("PostHog: 1 byte / 0.2 s, timeout 2 s", "trickle", trickle),
    ]
    context = mp.get_context("spawn")
    print(f"{'case':40} {'peak RSS':>9} {'time':>7}  outcome")
    for name, kind, answer in cases:
        origin = serve(answer)
        queue: mp.Queue[tuple[str, float, int]] = context.Queue()
        process = context.Process(target=client_run, args=(kind, origin, queue))
        process.start()
        outcome, elapsed, peak = queue.get(timeout=300)
        process.join()
        print(f"{name:40} {peak / MiB:6.0f} MiB {elapsed:6.2f}s  {outcome[:110]}")


if __name__ == "__main__":
    main()
