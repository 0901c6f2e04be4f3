"""Keeping secrets out of text: the one redaction every part of the notifier uses (log lines,
error messages, snippets of a receiver's answer).

A peer that echoes a credential rarely echoes it as configured: a webhook URL's ``user:pass``
comes back as ``Authorization: Basic <base64>``, a ``whsec_`` secret as its bare base64 key, a
Slack incoming webhook as its path, any of them percent-encoded or JSON-escaped. ``derived``
lists those forms; a ``Registry`` keeps them for every secret it was told about and ``scrub``s
text against all of them. The process-wide registry (``remember``, ``scrub``, ``clip``) is fed
wherever settings become live (the CLI, the daemon, a reload) and ``NotifierError`` scrubs its
message when constructed, so no error carries a secret wherever it goes.

Text cut short must not leave the beginning of a secret behind: ``clip`` scrubs before cutting
and drops a trailing fragment that begins a secret; ``scrub`` also drops a fragment of
``FRAGMENT_LENGTH`` characters or more that begins a secret anywhere (someone else's cut,
wrapped in more text).
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections.abc import Iterable, Iterator
from typing import Final
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

REDACTED: Final = "[redacted]"
#: Shorter values are not redacted: replacing every "ab" in a text would garble it, and no
#: credential is that short.
MIN_SECRET_LENGTH: Final = 4
#: Derived forms (a password, a query value, a token after ``Bearer``) shorter than this are
#: not redacted on their own: too likely to be an ordinary word.
MIN_DERIVED_LENGTH: Final = 6
#: A trailing fragment this long that begins a secret is dropped from text cut short.
TRAILING_FRAGMENT: Final = 4
#: A fragment this long that begins a secret is dropped wherever it is (a cut, then more text).
FRAGMENT_LENGTH: Final = 8

_SCHEMES: Final = re.compile(r"^(?:Bearer|Basic|Token|Bot|token)\s+(\S+)$")


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret replaced by ``[redacted]``, the longest first (so that no
    part of a longer secret that contains a shorter one is left behind)."""
    for secret in sorted(
        {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True
    ):
        text = text.replace(secret, REDACTED)
    return text


def derived(secret: str) -> dict[str, bool]:
    """The forms in which ``secret`` can be echoed, each with whether its beginning alone is
    secret too (a token's is; a URL's ``https://host/`` is not, only its secret parts are)."""
    forms: dict[str, bool] = {}

    def add(form: str | None, prefix: bool, minimum: int = MIN_DERIVED_LENGTH) -> None:
        if form and len(form) >= minimum and form.strip("/"):
            forms[form] = forms.get(form, False) or prefix

    is_url = "://" in secret
    scheme = _SCHEMES.match(secret)  # a header value "Bearer X": X is the secret part
    add(secret, not is_url and scheme is None, MIN_SECRET_LENGTH)
    if secret.startswith("whsec_"):
        add(secret.removeprefix("whsec_"), True)  # the bare base64 key
        add(secret.removeprefix("whsec_").rstrip("="), True)
    if scheme is not None:
        add(scheme.group(1), True)
        for part in _basic_parts(scheme.group(1)):
            add(part, True)
    if is_url:
        for form, prefix in _url_parts(secret):
            add(form, prefix)
    for form, prefix in list(forms.items()):
        for variant in _encodings(form):
            add(variant, prefix)
    return forms


def _basic_parts(token: str) -> Iterator[str]:
    """``user:pass`` and the password of HTTP Basic credentials, if ``token`` is those."""
    try:
        decoded = base64.b64decode(token + "=" * (-len(token) % 4), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return
    if ":" in decoded and decoded.isprintable():
        yield decoded
        yield decoded.partition(":")[2]


def _url_parts(url: str) -> Iterator[tuple[str, bool]]:
    """A URL's secret parts: its userinfo (as written, decoded, and as HTTP Basic), password,
    path (and, for a Slack incoming webhook or a long random one, its last segment), query and
    query values."""
    try:
        parts = urlsplit(url)
        username, password = parts.username, parts.password
    except ValueError:
        return
    if password:
        userinfo = parts.netloc.rpartition("@")[0]
        plain = f"{unquote(username or '')}:{unquote(password)}"
        yield userinfo, True
        yield plain, True
        yield password, True
        yield unquote(password), True
        basic = base64.b64encode(plain.encode()).decode()
        yield basic, True
        yield basic.rstrip("="), True
    path = parts.path
    if len(path) >= FRAGMENT_LENGTH:
        yield path, False
        yield path.lstrip("/"), False
        last = path.rstrip("/").rpartition("/")[2]
        if path.startswith("/services/") or len(last) >= 16:
            yield last, True
    if parts.query:
        yield parts.query, False
        for _key, value in parse_qsl(parts.query):
            yield value, True


def _encodings(form: str) -> Iterator[str]:
    """How ``form`` looks percent-encoded (upper- and lower-case hex, ``+`` for spaces) or
    JSON-escaped."""
    for encoded in (quote(form, safe=""), quote(form, safe="/:@"), quote_plus(form)):
        if encoded != form:
            yield encoded
            yield re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), encoded)
    if "/" in form:
        yield form.replace("/", "\\/")


class Registry:
    """The secrets a process knows, with their derived forms; thread-safe. It only grows: a
    secret replaced by a reload may still be echoed by an answer to an earlier request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None
        self._beginnings: tuple[str, ...] = ()  # forms whose beginning alone is secret
        self._heads: frozenset[str] = frozenset()  # their beginnings, TRAILING_FRAGMENT and up

    def remember(self, secrets: Iterable[str | None]) -> None:
        """Add ``secrets`` (raw values: a key, a token, a URL, a header value)."""
        with self._lock:
            known = self._secrets | {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
            if known == self._secrets:
                return
            forms: dict[str, bool] = {}
            for secret in known:
                for form, prefix in derived(secret).items():
                    forms[form] = forms.get(form, False) or prefix
            ordered = sorted(forms, key=len, reverse=True)  # longest first: no part left behind
            beginnings = tuple(f for f in ordered if forms[f])
            self._heads = frozenset(
                f[:n] for f in beginnings for n in range(TRAILING_FRAGMENT, len(f))
            )
            self._beginnings = beginnings
            self._pattern = re.compile("|".join(map(re.escape, ordered)))
            self._secrets = known

    def scrub(self, text: str) -> str:
        """``text`` with every known secret, its derived forms and any fragment of at least
        ``FRAGMENT_LENGTH`` characters that begins one replaced by ``[redacted]``."""
        pattern, beginnings = self._pattern, self._beginnings
        if pattern is None or not text:
            return text
        text = pattern.sub(REDACTED, text)
        for form in beginnings:
            if len(form) > FRAGMENT_LENGTH:
                text = _drop_fragments(text, form)
        return text

    def clip(self, text: str, limit: int, ellipsis: str = "…") -> str:
        """``text`` scrubbed, then cut to ``limit`` characters (ending with ``ellipsis``) without
        leaving the beginning of a secret, or half of ``[redacted]``, at the cut."""
        text = self.scrub(text)
        if len(text) <= limit:
            return text
        cut = text[: max(0, limit - len(ellipsis))]
        cut = cut[: len(cut) - self._trailing(cut)]
        for n in range(min(len(REDACTED) - 1, len(cut)), 0, -1):
            if cut.endswith(REDACTED[:n]):
                cut = cut[:-n]
                break
        return cut + ellipsis

    def _trailing(self, text: str) -> int:
        """How many characters at the end of ``text`` begin a secret (0: none)."""
        heads = self._heads
        longest = max((len(h) for h in heads), default=0)
        for n in range(min(longest, len(text)), TRAILING_FRAGMENT - 1, -1):
            if text[-n:] in heads:
                return n
        return 0


def _drop_fragments(text: str, form: str) -> str:
    """``text`` with every run of at least ``FRAGMENT_LENGTH`` characters that matches the
    beginning of ``form`` (but not all of it: that is already gone) replaced."""
    head = form[:FRAGMENT_LENGTH]
    start = text.find(head)
    while start >= 0:
        end = start + FRAGMENT_LENGTH
        while end < len(text) and end - start < len(form) and text[end] == form[end - start]:
            end += 1
        text = text[:start] + REDACTED + text[end:]
        start = text.find(head, start + len(REDACTED))
    return text


#: The process-wide registry: every secret of every configuration this process loaded.
_KNOWN: Final = Registry()


def remember(secrets: Iterable[str | None]) -> None:
    """Add ``secrets`` (``Settings.secrets()``) to what every error and log line is scrubbed of."""
    _KNOWN.remember(secrets)


def scrub(text: str) -> str:
    """``text`` without any secret this process knows (see ``Registry.scrub``)."""
    return _KNOWN.scrub(text)


def clip(text: str, limit: int, ellipsis: str = "…") -> str:
    """``text`` scrubbed and cut to ``limit`` characters, no secret's beginning at the cut."""
    return _KNOWN.clip(text, limit, ellipsis)
