"""`Instrumentation`: runs traced by the OpenTelemetry GenAI semantic conventions.

A run is an `invoke_agent {agent}` span; each model request under it a `chat
{model}` span (kind CLIENT); each tool call an `execute_tool {tool}` span, made
in the task that runs the call, so parallel calls are siblings and whatever a
tool does (an httpx request with its own instrumentation, a sub-agent's run)
nests under its call. The observer wraps the two steps of one `Run` object; the
loop itself knows nothing of tracing.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry import metrics, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from agentkit._version import __version__
from agentkit.otel import _content
from agentkit.otel._client import TracedClient

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, TracerProvider

    from agentkit._run.loop import Run
    from agentkit._run.state import ModelResponse
    from agentkit._run.tool_step import AnyCall, ToolOutcome

__all__ = ["CAPTURE_CONTENT_ENV", "SEMCONV_VERSION", "Instrumentation"]

SEMCONV_VERSION = "1.41.0"
"""The version of the OpenTelemetry semantic conventions the spans and metrics follow."""

CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""The conventions' environment variable: `true` records prompts, answers, tool
arguments and results on the spans."""

# Bucket boundaries the conventions advise for the two histograms.
_DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)  # fmt: skip
_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)  # fmt: skip

# Well-known `gen_ai.provider.name` values, by the host of the endpoint.
_PROVIDERS = {
    "api.openai.com": "openai",
    "api.deepseek.com": "deepseek",
    "api.groq.com": "groq",
    "api.mistral.ai": "mistral_ai",
    "api.x.ai": "x_ai",
    "api.perplexity.ai": "perplexity",
    "generativelanguage.googleapis.com": "gcp.gemini",
    "api.anthropic.com": "anthropic",
}

# Request fields the conventions record on `chat` spans, by the wire name; a later
# entry wins (`max_completion_tokens` replaces the deprecated `max_tokens`).
_REQUEST_FIELDS = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "seed": "gen_ai.request.seed",
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
}

_PROPAGATOR = TraceContextTextMapPropagator()

_NOTHING: AbstractAsyncContextManager[None] = nullcontext()

# OpenTelemetry's global tracer provider until an SDK is set: a proxy, or a no-op.
_NO_SDK = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)


class Instrumentation:
    """OpenTelemetry traces and metrics for agent runs, by the GenAI conventions.

    Pass one as `Agent(instrument=...)`, or call `agentkit.otel.instrument()` for
    every agent. Spans and metrics go to the tracer and meter providers given, or
    to OpenTelemetry's global ones; with none configured they cost little and go
    nowhere.

    Args:
        tracer_provider: Where spans go; default: the global tracer provider.
        meter_provider: Where metrics go; default: the global meter provider.
        capture_content: Record prompts, answers, tool arguments and tool
            results on the spans. Default: off, unless the environment variable
            `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` is `true`.
            Headers and API keys are never recorded.
        provider_name: `gen_ai.provider.name`; default: known from the client's
            base URL (`api.openai.com` is `openai`), else the URL's host.

    Example:
        >>> agent = Agent("gpt-4o-mini", tools=[get_current_time], instrument=Instrumentation())
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        capture_content: bool | None = None,
        provider_name: str | None = None,
    ) -> None:
        self._own_meter = meter_provider is not None
        self._own_tracer = tracer_provider is not None
        if capture_content is None:
            capture_content = os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() == "true"
        self.capture_content = capture_content
        self.provider_name = provider_name
        schema = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"
        self._tracer = trace.get_tracer(
            "agentkit", __version__, tracer_provider=tracer_provider, schema_url=schema
        )
        meter = metrics.get_meter(
            "agentkit", __version__, meter_provider=meter_provider, schema_url=schema
        )
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self._first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time to receive the first chunk in a streaming operation",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )

    def __repr__(self) -> str:
        return f"Instrumentation(capture_content={self.capture_content})"

    def observe(self, run: Run[Any], *, resumed: bool) -> AbstractAsyncContextManager[None]:
        """The `invoke_agent` span of `run`, with its steps wrapped in spans of their own."""
        if not (
            self._own_tracer
            or not isinstance(trace.get_tracer_provider(), _NO_SDK)
            or trace.get_current_span().get_span_context().is_valid
            or self._metrics_live()
        ):
            # No tracing SDK, no caller's trace to pass on and no metrics SDK: nothing
            # would be recorded or propagated, so the steps are left plain.
            return _NOTHING
        state = run.state
        agent = state.agent or getattr(run.owner, "name", None) or "agent"
        provider = self._provider(run.client)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.provider.name": provider,
            "gen_ai.agent.name": agent,
            "gen_ai.request.model": run.config.model,
            "gen_ai.conversation.id": state.run_id,
        }
        links = []
        if resumed and state.trace_context:
            # A resumed run is a new trace (the caller's, if any) linked to the run it
            # goes on from, which may have ended days ago in another process.
            origin = trace.get_current_span(
                _PROPAGATOR.extract({"traceparent": state.trace_context})
            ).get_span_context()
            if origin.is_valid:
                links.append(Link(origin, {"agentkit.link": "resumed_from"}))
        span = self._tracer.start_span(
            f"invoke_agent {agent}", kind=SpanKind.INTERNAL, attributes=attributes, links=links
        )
        return self._traced(run, span, agent, provider)

    @asynccontextmanager
    async def _traced(
        self, run: Run[Any], span: Span, agent: str, provider: str
    ) -> AsyncIterator[None]:
        state = run.state
        with trace.use_span(
            span, end_on_exit=True, record_exception=False, set_status_on_exception=False
        ):
            if state.trace_context is None and span.is_recording():
                carrier: dict[str, str] = {}
                _PROPAGATOR.inject(carrier)
                state.trace_context = carrier.get("traceparent")
            run.model_step = self._model_step(run, run.model_step, provider)  # type: ignore[method-assign]
            run.tool_step = self._tool_step(run, run.tool_step)  # type: ignore[method-assign]
            try:
                yield
            except BaseException as exc:
                _failed(span, exc)
                raise
            finally:
                usage = state.usage
                span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
                span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
                if state.agent is not None and state.agent != agent:
                    span.set_attribute("agentkit.last_agent", state.agent)
                if state.pending:
                    span.set_attribute("agentkit.paused_calls", len(state.pending))

    def _model_step(
        self, run: Run[Any], step: Callable[..., Any], provider: str
    ) -> Callable[..., Any]:
        tracer, capture = self._tracer, self.capture_content
        fallback = sys.modules.get("agentkit._client.fallback")
        # The endpoint's attributes, worked out again only when a handoff brings a
        # client of its own.
        endpoint: list[Any] = [run.client, provider, _server(run.client)]

        async def model_step(*, tool_choice: Any) -> ModelResponse:
            config = run.config  # a handoff changes it between steps
            model = config.model
            if run.client is not endpoint[0]:
                endpoint[:] = [run.client, self._provider(run.client), _server(run.client)]
            base = {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": endpoint[1],
                "gen_ai.request.model": model,
                **endpoint[2],
            }
            attributes = {**base, **_request_attributes(config.request_params)}
            if run.state.agent is not None:
                attributes["gen_ai.agent.name"] = run.state.agent
            started = time.perf_counter()
            with tracer.start_as_current_span(
                f"chat {model}",
                kind=SpanKind.CLIENT,
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                client = run.client
                note = _request_noter(span) if capture else None
                if fallback is not None and isinstance(client, fallback.FallbackModel):
                    # The run knows a FallbackModel by its type (to report the endpoints
                    # it tried), so it gets one: the same endpoints, each traced.
                    traced = [TracedClient(c, span, note) for c, _ in client.models]
                    run.client = fallback.FallbackModel(
                        [
                            (t, n) if n else t
                            for t, (_, n) in zip(traced, client.models, strict=True)
                        ]
                    )
                else:
                    traced = [TracedClient(client, span, note)]
                    run.client = traced[0]
                try:
                    response: ModelResponse = await step(tool_choice=tool_choice)
                except BaseException as exc:
                    error = _failed(span, exc)
                    self._duration.record(
                        time.perf_counter() - started, {**base, "error.type": error}
                    )
                    raise
                finally:
                    run.client = client
                usage = response.usage
                if response.finish_reason is not None:
                    span.set_attribute("gen_ai.response.finish_reasons", [response.finish_reason])
                span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
                span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
                cached = usage.prompt_tokens_details
                if cached is not None and cached.cached_tokens is not None:
                    span.set_attribute("gen_ai.usage.cache_read.input_tokens", cached.cached_tokens)
                details = usage.completion_tokens_details
                if details is not None and details.reasoning_tokens is not None:
                    span.set_attribute(
                        "gen_ai.usage.reasoning.output_tokens", details.reasoning_tokens
                    )
                if capture:
                    span.set_attribute(
                        "gen_ai.output.messages",
                        _content.output_messages(response.message, response.finish_reason),
                    )
                metric = dict(base)
                # The endpoint that answered (a FallbackModel's may not be its first).
                answered = next((t for t in traced if t.answered), traced[-1])
                if len(traced) > 1:
                    found = _server(answered)
                    span.set_attributes(found)
                    metric.update(found)
                if answered.response_model:
                    metric["gen_ai.response.model"] = answered.response_model
                self._duration.record(time.perf_counter() - started, metric)
                first_chunk_at = answered.first_chunk_at
                if first_chunk_at is not None:
                    self._first_chunk.record(first_chunk_at - started, metric)
                self._tokens.record(usage.prompt_tokens, {**metric, "gen_ai.token.type": "input"})
                self._tokens.record(
                    usage.completion_tokens, {**metric, "gen_ai.token.type": "output"}
                )
                return response

        return model_step

    def _tool_step(self, run: Run[Any], step: Callable[..., Any]) -> Callable[..., Any]:
        tracer, capture = self._tracer, self.capture_content

        async def tool_step(call: AnyCall) -> ToolOutcome:
            name = call.tool_name
            attributes: dict[str, Any] = {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": name,
                "gen_ai.tool.call.id": call.id,
                "gen_ai.tool.type": "function",
            }
            config = run.config  # the agent's own, after a handoff too
            way = config.handoffs.get(name)
            found = way.tool if way is not None else config.tools.get(name)
            if found is not None and found.description:
                attributes["gen_ai.tool.description"] = found.description
            if capture:
                attributes["gen_ai.tool.call.arguments"] = call.tool_input
            with tracer.start_as_current_span(
                f"execute_tool {name}",
                kind=SpanKind.INTERNAL,
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                try:
                    outcome: ToolOutcome = await step(call)
                except BaseException as exc:
                    _failed(span, exc)
                    raise
                if outcome.error is None:
                    if capture:  # the conventions' result is a successful call's
                        span.set_attribute(
                            "gen_ai.tool.call.result", _text(outcome.message.content)
                        )
                else:
                    # The run goes on (the model is told), but the call failed.
                    error = outcome.exception_type or "ToolError"
                    span.set_attribute("error.type", error)
                    span.set_status(Status(StatusCode.ERROR, outcome.error if capture else error))
                return outcome

        return tool_step

    def _metrics_live(self) -> bool:
        """Whether a metrics SDK may record: one was given, or one is set globally
        (OpenTelemetry's global provider is a proxy, or a no-op, until one is)."""
        if self._own_meter:
            return True
        provider = metrics.get_meter_provider()
        return not isinstance(provider, metrics.NoOpMeterProvider) and (
            type(provider).__name__ != "_ProxyMeterProvider"
        )

    def _provider(self, client: Any) -> str:
        if self.provider_name is not None:
            return self.provider_name
        host = _host(client)
        if host is None:
            return "openai"  # a test double or a custom model: the protocol's owner
        return _PROVIDERS.get(host, host)


def _host(client: Any) -> str | None:
    base_url = getattr(client, "base_url", None)
    if not isinstance(base_url, str):
        return None
    return urlsplit(base_url).hostname


def _server(client: Any) -> dict[str, Any]:
    """`server.address` and `server.port` of the endpoint (never its user info)."""
    base_url = getattr(client, "base_url", None)
    if not isinstance(base_url, str):
        return {}
    parts = urlsplit(base_url)
    if parts.hostname is None:
        return {}
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return {"server.address": parts.hostname, "server.port": port}


def _request_attributes(params: Mapping[str, Any]) -> dict[str, Any]:
    """The conventions' `gen_ai.request.*` and `gen_ai.output.type` of a request's fields."""
    found: dict[str, Any] = {}
    for field, name in _REQUEST_FIELDS.items():
        value = params.get(field)
        if value is not None:
            found[name] = value
    stop = params.get("stop")
    if stop:
        found["gen_ai.request.stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    response_format = params.get("response_format")
    if response_format is not None:
        kind = getattr(response_format, "type", None)
        if kind is None and isinstance(response_format, Mapping):
            kind = response_format.get("type")
        found["gen_ai.output.type"] = "text" if kind == "text" else "json"
    return found


def _request_noter(span: Span) -> Callable[[Any], None]:
    def note(params: Any) -> None:
        span.set_attribute("gen_ai.input.messages", _content.input_messages(params["messages"]))

    return note


def _text(content: Any) -> str:
    return content if isinstance(content, str) else _content.text(content)


def _failed(span: Span, exc: BaseException) -> str:
    """Mark `span` failed by `exc`; return its `error.type`."""
    error = type(exc).__qualname__
    status = getattr(exc, "status_code", None)
    span.set_attribute("error.type", error)
    if isinstance(status, int):
        span.set_attribute("http.response.status_code", status)
    span.set_status(Status(StatusCode.ERROR, f"{error}: {exc}"[:1000]))
    if isinstance(exc, Exception):  # a cancellation is no error to show a traceback of
        span.record_exception(exc, escaped=True)
    return error
