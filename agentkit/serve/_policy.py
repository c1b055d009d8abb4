"""What a served endpoint lets in: the `Host` names it answers to, and the content
parts (and image URLs) a client may have it forward to the agent's model.

No web framework here; `agentkit.serve` turns a refusal into an error answer.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pydantic import BaseModel

from agentkit._exceptions import UserError
from agentkit._wire.messages import (
    AssistantMessage,
    CustomToolCall,
    ImagePart,
    Message,
    OtherPart,
    ToolCall,
)

__all__ = [
    "LOCAL_HOSTS",
    "ContentPolicy",
    "HostPatterns",
    "Rejected",
    "check_content",
    "host_of",
]

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
"""The names a keyless app answers to by default: the loopback ones, any port."""

# Names that never lead to a public host: an image URL naming one points the model's
# fetcher (a self-hosted one especially) into a private network.
_LOCAL_SUFFIXES = (
    ".localhost",
    ".local",
    ".localdomain",
    ".internal",
    ".intranet",
    ".private",
    ".lan",
    ".home",
    ".corp",
    ".home.arpa",
)
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class Rejected(Exception):
    """A request part the policy does not let through: `param` names it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


# --- hosts ---------------------------------------------------------------------------


def host_of(header: str) -> str | None:
    """The host of a `Host` header (`name`, `name:port`, `[v6]:port`): lower case,
    without port, brackets or a trailing dot; None when it is not of that form."""
    value = header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        host, rest = value[1:end], value[end + 1 :]
        if end < 0 or (rest and not (rest[0] == ":" and rest[1:].isdigit())):
            return None
    else:
        host, colon, port = value.partition(":")
        if colon and not port.isdigit():
            return None
    host = host.rstrip(".")
    return host or None


class HostPatterns:
    """Host names to match: exact names (`localhost`, `127.0.0.1`, `::1`),
    `*.example.com` for any name under `example.com`, or `*` for any host."""

    def __init__(self, patterns: Iterable[str], what: str) -> None:
        if isinstance(patterns, str):
            patterns = [patterns]
        names: set[str] = set()
        suffixes: list[str] = []
        self.any = False
        for pattern in patterns:
            if not isinstance(pattern, str) or not pattern.strip():
                raise UserError(f"{what} must be host names, got {pattern!r}")
            name = pattern.strip().lower().strip("[]").rstrip(".")
            if name == "*":
                self.any = True
            elif name.startswith("*.") and "*" not in name[1:]:
                suffixes.append(name[1:])
            elif "*" in name:
                raise UserError(
                    f"{what}: '*' may only be a whole name or lead '*.', got {pattern!r}"
                )
            else:
                names.add(name)
        self.names = frozenset(names)
        self.suffixes = tuple(suffixes)

    def match(self, host: str) -> bool:
        """Whether `host` (normalised as `host_of` does) is one of the patterns."""
        return self.any or host in self.names or host.endswith(self.suffixes)

    def __repr__(self) -> str:
        shown = ["*"] if self.any else [*sorted(self.names), *(f"*{s}" for s in self.suffixes)]
        return f"HostPatterns({shown!r})"


# --- content parts -----------------------------------------------------------------------


@dataclass(frozen=True)
class ContentPolicy:
    """Which content parts a client may send a served agent, which then go to the
    agent's model with the operator's key.

    The default lets text through and nothing else: no `image_url`, `file`,
    `input_audio` or any other part. Text is always accepted, and an assistant
    message of the history may also hold `refusal` parts.

    Args:
        types: The content part types accepted, such as `{"text", "image_url"}`.
        image_schemes: For `image_url` parts: the URL schemes accepted. `data:`
            URLs must hold a raster image (`data:image/png;base64,...`; not SVG).
        image_hosts: For `image_url` parts: the only hosts accepted (exact names,
            `*.example.com`); None accepts any public host.
        allow_private_hosts: With `image_hosts=None`, also accept image URLs whose
            host is a loopback, private, link-local (such as the cloud metadata
            address 169.254.169.254) or otherwise non-public address or name.

    Example:
        >>> create_app({"vision": agent}, content_policy={"vision": ContentPolicy(
        ...     types={"text", "image_url"}, image_hosts={"images.example.com"})})
    """

    types: frozenset[str] = frozenset({"text"})
    image_schemes: frozenset[str] = frozenset({"https", "data"})
    image_hosts: frozenset[str] | None = None
    allow_private_hosts: bool = False
    _hosts: HostPatterns | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("types", "image_schemes"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) and v for v in value):
                raise UserError(f"ContentPolicy.{name} must be a set of non-empty strings")
            object.__setattr__(self, name, frozenset(v.lower() for v in value))
        object.__setattr__(self, "types", self.types | {"text"})
        if self.image_hosts is not None:
            if isinstance(self.image_hosts, str):
                raise UserError("ContentPolicy.image_hosts must be a set of host names")
            hosts = HostPatterns(self.image_hosts, "ContentPolicy.image_hosts")
            object.__setattr__(self, "image_hosts", frozenset(self.image_hosts))
            object.__setattr__(self, "_hosts", hosts)

    def image_problem(self, url: str) -> str | None:
        """Why an `image_url` part's URL is not accepted; None when it is."""
        scheme, colon, rest = url.partition(":")
        scheme = scheme.lower()
        accepted = " or ".join(f"'{s}:'" for s in sorted(self.image_schemes))
        if not colon or scheme not in self.image_schemes:
            return f"image URLs must be {accepted} URLs"
        if scheme == "data":
            media = rest[:32].partition(",")[0].partition(";")[0].strip().lower()
            # SVG is a document that may itself point at other URLs; models take raster images.
            if not media.startswith("image/") or media.startswith("image/svg"):
                return "a 'data:' URL must hold a raster image ('data:image/png;base64,...')"
            return None
        # Characters that URL parsers disagree about (a backslash is a slash to a
        # browser, not to urlsplit) could make the host checked here differ from
        # the one fetched.
        if "\\" in url or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
            return "image URLs must not hold spaces, control characters or backslashes"
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            return "the image URL is not a valid URL"
        if "@" in parts.netloc:
            return "image URLs must not carry user info ('user@host')"
        if not host:
            return "the image URL has no host"
        host = host.rstrip(".")
        if self._hosts is not None:
            if not self._hosts.match(host):
                return f"the image host '{host}' is not one this model accepts"
            return None
        if not self.allow_private_hosts and not public_host(host):
            return (
                f"the image host '{host}' is not a public host (a loopback, private, "
                "link-local or reserved address, or a local name)"
            )
        return None


def public_host(host: str) -> bool:
    """Whether `host` (lower case) is a global IP address, or a host name that is not
    a local one (a dotted name of plain characters, outside local suffixes)."""
    address = _ip(host)
    if address is not None:
        return _global(address)
    if not set(host) <= _NAME_CHARS or "." not in host or ".." in host:
        return False
    return host != "localhost" and not host.endswith(_LOCAL_SUFFIXES)


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        pass
    if not host or not set(host) <= _NAME_CHARS:
        return None
    # The forms inet_aton (and so many fetchers) reads as IPv4 as well: 2852039166,
    # 0xa9fea9fe, 0251.0376.0251.0376, 169.254.43518.
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _global(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv4 address inside an IPv6 one reaches that IPv4 address.
        if address.ipv4_mapped is not None:
            return _global(address.ipv4_mapped)
        if address in _NAT64:
            return _global(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.sixtofour is not None:
            return _global(address.sixtofour)
        if address.teredo is not None:
            return False
    return address.is_global and not address.is_multicast


def check_content(policy: ContentPolicy, messages: Sequence[Message]) -> None:
    """Raise `Rejected` for the first content part `policy` does not accept, and drop
    the fields of messages, parts and tool calls that agentkit does not model, so
    that only what the server understands reaches the model.

    Types outside the policy are rejected wherever they appear (an assistant
    message of the history may hold `refusal` parts).
    """
    for i, message in enumerate(messages):
        _drop_extra(message)
        content = message.content
        if isinstance(content, list):
            for j, part in enumerate(content):
                kind = part.type
                where = f"messages[{i}].content[{j}]"
                if kind == "refusal" and isinstance(message, AssistantMessage):
                    _drop_extra(part)
                    continue
                if kind not in policy.types:
                    accepted = ", ".join(f"'{t}'" for t in sorted(policy.types))
                    raise Rejected(
                        f"{where}.type",
                        f"content parts of type '{_shown(kind)}' are not accepted by this "
                        f"model (accepted: {accepted})",
                    )
                if isinstance(part, ImagePart):
                    problem = policy.image_problem(part.image_url.url)
                    if problem is not None:
                        raise Rejected(f"{where}.image_url.url", problem)
                    _drop_extra(part.image_url)
                if not isinstance(part, OtherPart):  # an unmodelled part is all extras
                    _drop_extra(part)
        if isinstance(message, AssistantMessage) and message.tool_calls:
            for call in message.tool_calls:
                if isinstance(call, ToolCall):
                    _drop_extra(call)
                    _drop_extra(call.function)
                elif isinstance(call, CustomToolCall):
                    _drop_extra(call)
                    _drop_extra(call.custom)


def _drop_extra(model: BaseModel) -> None:
    extra = model.__pydantic_extra__
    if extra:
        extra.clear()


def _shown(kind: str) -> str:
    """A client's part type, safe and short enough to repeat in an error message."""
    return kind if len(kind) <= 40 and kind.isprintable() else f"{kind[:40]!r}…"
