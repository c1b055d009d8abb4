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
        # The wire models, with the first agent or request that needs one.
        "agentkit._wire.messages",
        "agentkit._wire.responses",
        # The run machinery, with an agent's first run.
        "agentkit._run.loop",
        "agentkit._run.rules",
        "agentkit._run.state",
        "agentkit._run.result",
        "agentkit._run.history",
        "agentkit._run.tool_step",
        "agentkit._run.concurrency",
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


def test_the_run_machinery_loads_with_the_first_run_and_then_is_reached_directly() -> None:
    code = (
        "import sys\n"
        "from agentkit import Agent\n"
        "from agentkit.testing import ScriptedModel\n"
        "from agentkit import _agent\n"
        "run_modules = ('loop', 'rules', 'state', 'result', 'history', 'tool_step')\n"
        "agent = Agent('m', client=ScriptedModel(['hi']), instructions='Be brief.')\n"
        "assert not [m for m in run_modules if f'agentkit._run.{m}' in sys.modules]\n"
        "assert agent.run_sync('hello').output == 'hi'\n"
        "assert all(f'agentkit._run.{m}' in sys.modules for m in run_modules)\n"
        "for m in ('loop', 'state', 'result', 'history'):  # those a plain run uses here\n"
        "    # The stand-in is replaced by the module itself: later runs pay no indirection.\n"
        "    assert getattr(_agent, '_' + m) is sys.modules[f'agentkit._run.{m}'], m\n"
        "from agentkit import Paused\n"
        "assert Agent('m', pauses=Paused).pauses is Paused\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_module_on_first_use_is_imported_by_its_first_attribute_read_and_then_replaces_its_stand_in() -> (
    None
):
    code = (
        "import sys\n"
        "from agentkit._lazy import on_first_use\n"
        "assert 'colorsys' not in sys.modules\n"
        "lazy = on_first_use(globals(), 'lazy', 'colorsys')\n"
        "assert 'colorsys' in repr(lazy) and 'colorsys' not in sys.modules\n"
        "assert lazy.rgb_to_hsv(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0)\n"
        "assert lazy is sys.modules['colorsys']\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
