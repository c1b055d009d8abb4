"""OpenTelemetry traces and metrics for agent runs, by the GenAI semantic conventions.

Install the extra (`pip install "agentkit[otel]"`, which is `opentelemetry-api`
alone) and either call `instrument()` once, or give an agent its own
`Agent(instrument=Instrumentation(...))`. Configure an OpenTelemetry SDK and
exporter as for any other library; without one, the spans go nowhere.

Nothing of OpenTelemetry is imported by `import agentkit`: only this package
imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

try:
    import opentelemetry.trace  # noqa: F401
except ImportError as exc:  # depends on the installed extras
    raise ImportError(
        'agentkit.otel needs the OpenTelemetry API: pip install "agentkit[otel]"'
    ) from exc

from agentkit.otel._asgi import TraceContextMiddleware
from agentkit.otel._observer import CAPTURE_CONTENT_ENV, SEMCONV_VERSION, Instrumentation

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

__all__ = [
    "CAPTURE_CONTENT_ENV",
    "SEMCONV_VERSION",
    "Instrumentation",
    "TraceContextMiddleware",
    "instrument",
    "uninstrument",
]


def instrument(
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    capture_content: bool | None = None,
    provider_name: str | None = None,
) -> Instrumentation:
    """Trace the runs of every agent that has no `instrument` of its own.

    The arguments are `Instrumentation`'s. Returns the instrumentation now in use.

    Example:
        >>> import agentkit.otel
        >>> agentkit.otel.instrument()
    """
    from agentkit._agent import Agent

    instrumentation = Instrumentation(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        capture_content=capture_content,
        provider_name=provider_name,
    )
    Agent.instrument_all = instrumentation
    return instrumentation


def uninstrument() -> None:
    """Stop tracing the agents `instrument()` traced: their runs are plain again."""
    from agentkit._agent import Agent

    Agent.instrument_all = None
