"""The public namespace: one sorted, complete `agentkit.__all__` over private modules."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import types

import pytest

import agentkit
from agentkit import _exceptions

# The private modules of the foundation layer, and the names in their `__all__`
# that are shared between modules but are not part of the public API.
INTERNAL: dict[str, set[str]] = {
    "agentkit._wire.messages": {"MESSAGE_ADAPTER", "generated_call_id"},
    "agentkit._wire.responses": set(),
    "agentkit._wire.chunks": {"PlainChunk", "as_plain", "plain_chunk"},
    "agentkit._wire.bodies": {"ModelList"},
    "agentkit._exceptions": set(),
    "agentkit._redact": {"MARK", "MIN_SECRET", "display_url", "scrub", "scrub_value", "secrets_of"},
    "agentkit._client.client": {
        "DEFAULT_ATTEMPT_TIMEOUT",
        "DEFAULT_BASE_URL",
        "DEFAULT_LIMITS",
        "DEFAULT_MAX_EVENT_BYTES",
        "DEFAULT_MAX_RESPONSE_BYTES",
        "DEFAULT_TIMEOUT",
    },
    "agentkit._client.chunk_stream": set(),
    "agentkit._wire.params": {"PARAM_NAMES"},
    "agentkit._client.sse": {
        "DEFAULT_MAX_EVENT_BYTES",
        "EventTooLargeError",
        "SSEDecoder",
        "ServerSentEvent",
        "aiter_events",
    },
    "agentkit._client.retry": {"MAX_RETRY_AFTER", "backoff_delay", "retry_after", "should_retry"},
    "agentkit._client.errors": {
        "parse_body",
        "quote",
        "redact_key",
        "request_secrets",
        "status_error",
        "stream_error",
        "transport_error",
    },
}


def test_all_is_sorted_and_unique() -> None:
    # Plain code-point order, with dunder names such as __version__ at the end.
    assert agentkit.__all__ == sorted(agentkit.__all__, key=lambda n: (n.startswith("__"), n))
    assert len(agentkit.__all__) == len(set(agentkit.__all__))


def test_every_name_in_all_exists() -> None:
    missing = [name for name in agentkit.__all__ if not hasattr(agentkit, name)]
    assert missing == []


def test_every_public_attribute_is_in_all() -> None:
    public = {
        name
        for name, value in vars(agentkit).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert sorted(public - set(agentkit.__all__)) == []


@pytest.mark.parametrize("module_name", sorted(INTERNAL))
def test_private_modules_export_their_public_names(module_name: str) -> None:
    module = importlib.import_module(module_name)
    declared = set(module.__all__)
    assert INTERNAL[module_name] <= declared, "stale entries in INTERNAL"
    assert all(hasattr(module, name) for name in declared)
    public = declared - INTERNAL[module_name]
    assert sorted(public - set(agentkit.__all__)) == []
    for name in public:
        assert getattr(agentkit, name) is getattr(module, name), name


def test_internal_names_stay_internal() -> None:
    leaked = {name for names in INTERNAL.values() for name in names} & set(agentkit.__all__)
    assert leaked == set()


def exception_classes() -> list[type[BaseException]]:
    return [
        value
        for value in vars(_exceptions).values()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == _exceptions.__name__
    ]


def test_every_exception_is_an_agentkit_error_and_exported() -> None:
    classes = exception_classes()
    assert len(classes) >= 20
    for cls in classes:
        assert issubclass(cls, agentkit.AgentKitError), cls
        assert cls.__name__ in agentkit.__all__, cls
        assert getattr(agentkit, cls.__name__) is cls


def test_error_hierarchy() -> None:
    a = agentkit
    assert issubclass(a.APIError, a.AgentKitError)
    assert issubclass(a.UserError, a.AgentKitError)
    assert issubclass(a.APIConnectionError, a.APIError)
    assert issubclass(a.APITimeoutError, a.APIConnectionError)
    assert issubclass(a.APIResponseValidationError, a.APIError)
    assert issubclass(a.APIResponseTooLargeError, a.APIError)
    assert not issubclass(a.APIResponseTooLargeError, a.APIConnectionError)  # not retried
    assert issubclass(a.APIStatusError, a.APIError)
    for name in (
        "BadRequestError",
        "AuthenticationError",
        "PermissionDeniedError",
        "NotFoundError",
        "ConflictError",
        "UnprocessableEntityError",
        "RateLimitError",
        "InternalServerError",
    ):
        assert issubclass(getattr(a, name), a.APIStatusError), name


def test_version() -> None:
    assert isinstance(agentkit.__version__, str)
    assert agentkit.__version__.count(".") >= 1


@pytest.mark.parametrize(
    "module",
    [
        "asyncio",  # trio programs never load it
        "anyio.lowlevel",
        "anyio.to_thread",  # with the first sync tool call
        "docstring_parser",  # with the first @tool
        "agentkit._run.events",  # with the first run that has an event handler
        "agentkit._run.streamed_run",
        "agentkit._client.sse",  # with the first stream
        "agentkit._wire.chunks",
    ],
)
def test_the_core_names_load_no_module_before_it_is_needed(module: str) -> None:
    code = (
        "import sys\n"
        "from agentkit import Agent, ChatClient, tool\n"
        f"assert {module!r} not in sys.modules, 'loaded at import'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
