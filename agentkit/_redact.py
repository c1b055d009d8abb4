"""Keeping secrets out of what agentkit shows: URLs, error messages, bodies, pickles.

The lowest layer, so the client, the exceptions and the integrations share one
rule rather than each their own:

- A URL is shown without its user info, and with every query value replaced
  by `***` (`https://host/v1?api-key=***`).
- The secrets of a request are the credentials in its headers (the
  `Authorization` value and any header named like a key, token or secret) and
  in its URL (user info and query values). Text that quotes them is cut only
  after every run of 8 or more characters of a secret has been replaced by
  `<redacted>`, so that neither a whole key nor a piece of one that straddles
  the cut is shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import pydantic_core

__all__ = ["MARK", "MIN_SECRET", "display_url", "scrub", "scrub_value", "secrets_of"]

MIN_SECRET = 8
"""Shorter values (test keys, `?page=2`) are not treated as secrets: masking them
would garble messages, and a fragment that short identifies no key."""

MARK = "<redacted>"

# Header names whose value is a credential, whatever the scheme.
_SECRET_HEADER_WORDS = ("auth", "key", "token", "secret", "password", "cookie", "signature")
# Query parameters that are never secret and that servers quote back in their errors
# (Azure's "api-version 2024-10-21 is not supported"): not masked in quoted bodies.
_PUBLIC_QUERY = frozenset({"api-version"})


def display_url(url: object) -> str:
    """`url` as it may be shown: without user info or fragment, each query value `***`.

    Args:
        url: A URL as a string or an `httpx.URL` (anything whose `str()` is a URL).

    Returns:
        The URL without secrets, such as `https://host/v1/chat/completions?api-key=***`.
    """
    text = str(url)
    try:
        parts = urlsplit(text)
        host = parts.netloc.rpartition("@")[2]
    except ValueError:  # an invalid IPv6 host, say: nothing of it is shown
        return "(a URL that cannot be parsed)"
    if not parts.scheme and not host:
        # Not a URL at all: it might be a key passed in the wrong place.
        return "(not a URL)" if text else ""
    shown = f"{parts.scheme}://{host}{parts.path}" if parts.scheme else f"//{host}{parts.path}"
    if parts.query:
        items = []
        for item in parts.query.split("&"):
            name, equals, _ = item.partition("=")
            # A bare item may itself be a token (`?sk-...`): only names are kept.
            items.append(f"{name}=***" if equals else "***")
        shown += "?" + "&".join(items)
    return shown


def secrets_of(headers: Any = None, url: object = None) -> tuple[str, ...]:
    """The credentials carried by a request's headers and URL, 8 characters or longer.

    Args:
        headers: A mapping of header names to values, or `(name, value)` pairs;
            `httpx.Headers` and `httpx2.Headers` work as they are.
        url: The request URL.

    Returns:
        Each secret once (its percent-decoded form too, when that differs).
    """
    found: list[str] = []
    items: Iterable[tuple[Any, Any]] = ()
    if isinstance(headers, Mapping) or hasattr(headers, "multi_items"):
        multi = getattr(headers, "multi_items", None)
        items = multi() if multi is not None else headers.items()
    elif headers is not None:
        items = headers
    for name, value in items:
        name = _text(name).lower()
        if not any(word in name for word in _SECRET_HEADER_WORDS):
            continue
        value = _text(value).strip()
        # "Bearer sk-...", "Basic dXNl...": the credential without its scheme, whose
        # windows would otherwise take the space before a key quoted in a message.
        scheme, _, credential = value.partition(" ")
        found.append(credential.strip() if credential and scheme.isalpha() else value)
    if url is not None:
        try:
            parts = urlsplit(str(url))
            userinfo = parts.netloc.rpartition("@")[0]
        except ValueError:
            parts, userinfo = None, ""
        if userinfo:
            found.extend(userinfo.partition(":")[::2])
            found.append(userinfo)
        for item in parts.query.split("&") if parts is not None and parts.query else ():
            name, _, value = item.partition("=")
            if unquote(name).lower() not in _PUBLIC_QUERY:
                found.append(value or name)
    unique: dict[str, None] = {}
    for secret in found:
        for form in (secret, unquote(secret)):
            if len(form) >= MIN_SECRET:
                unique[form] = None
    return tuple(unique)


def scrub(text: str, secrets: Sequence[str]) -> str:
    """`text` with every run of 8 or more characters of a secret replaced by `<redacted>`.

    Runs, not only whole secrets: a body a server cut in the middle of a key,
    or a key split by a line break, still shows nothing that long of it. A
    match is any 8-character window of a secret; overlapping and adjacent
    windows merge into one mark.

    Args:
        text: The text to show.
        secrets: The secrets (see `secrets_of`); shorter ones than 8 are ignored.

    Returns:
        The text, unchanged (the same object) when it holds no secret.
    """
    if len(text) < MIN_SECRET or not secrets:
        return text
    spans: list[tuple[int, int]] = []
    for secret in secrets:
        if len(secret) < MIN_SECRET:
            continue
        for offset in range(len(secret) - MIN_SECRET + 1):
            gram = secret[offset : offset + MIN_SECRET]
            start = text.find(gram)
            while start >= 0:
                spans.append((start, start + MIN_SECRET))
                start = text.find(gram, start + 1)
    if not spans:
        return text
    spans.sort()
    pieces: list[str] = []
    done = 0
    run_start, run_end = spans[0]
    for start, end in spans[1:]:
        if start <= run_end:
            run_end = max(run_end, end)
            continue
        pieces += [text[done:run_start], MARK]
        done, (run_start, run_end) = run_end, (start, end)
    pieces += [text[done:run_start], MARK, text[run_end:]]
    return "".join(pieces)


def scrub_value(value: Any, secrets: Sequence[str]) -> Any:
    """A JSON-like value (a parsed body) with `scrub` applied to every string in it.

    Containers are copied only where something changed. A body without any
    secret in it, the usual case, is returned as it is after one look at its
    JSON text, rather than a look at each of its strings.
    """
    secrets = [secret for secret in secrets if len(secret) >= MIN_SECRET]
    if not secrets:
        return value
    if isinstance(value, str):
        return scrub(value, secrets)
    if not isinstance(value, dict | list):
        return value
    # In JSON text a secret reads as it is, unless it holds a character JSON escapes;
    # then the text can be masked as a whole and read back, as long as no mark fell
    # outside a string (a secret of digits in a number, say).
    if not any(char in secret for secret in secrets for char in '"\\'):
        try:
            text = pydantic_core.to_json(value, inf_nan_mode="constants").decode()
        except (ValueError, TypeError):  # not JSON-like after all: look at each string
            text = None
        if text is not None:
            masked = scrub(text, secrets)
            if masked is text:
                return value
            try:
                return pydantic_core.from_json(masked)
            except ValueError:
                pass
    return _scrub_each(value, secrets)


def _scrub_each(value: Any, secrets: Sequence[str]) -> Any:
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, dict):
        pairs = [(_scrub_each(k, secrets), _scrub_each(v, secrets)) for k, v in value.items()]
        changed = any(
            a[0] is not k or a[1] is not v for a, (k, v) in zip(pairs, value.items(), strict=True)
        )
        return dict(pairs) if changed else value
    if isinstance(value, list):
        items = [_scrub_each(v, secrets) for v in value]
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    return value


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)
