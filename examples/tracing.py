"""The world clock, traced: its spans go over OTLP/HTTP to a trace viewer.

    pip install -e ".[otel,examples]" arize-phoenix
    phoenix serve &                        # a viewer on http://127.0.0.1:6006
    python examples/tracing.py "What time is it in Tokyo and in Paris?"

Then open the viewer: one `invoke_agent clock` trace with two `chat` spans (the
tokens of each) and the two `execute_tool get_current_time` calls, run in
parallel. Prompts, answers and tool arguments are recorded only with
`--capture-content` (or OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true).
Like `clock.py`, it runs offline on a scripted model unless OPENAI_API_KEY or
OPENAI_BASE_URL is set.
"""

from __future__ import annotations

import argparse
import os

from clock import build_agent
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import agentkit.otel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("question", nargs="?", default="What time is it in Tokyo and in Paris?")
    parser.add_argument(
        "--endpoint",
        default=os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:6006"),
        help="the viewer's OTLP/HTTP base URL (spans go to {endpoint}/v1/traces)",
    )
    parser.add_argument("--project", default="agentkit-clock", help="the viewer's project")
    parser.add_argument("--capture-content", action="store_true", help="record prompts and answers")
    args = parser.parse_args(argv)

    resource = Resource.create(
        {"service.name": "agentkit-clock", "openinference.project.name": args.project}
    )
    provider = TracerProvider(resource=resource)
    exporter = OTLPSpanExporter(endpoint=f"{args.endpoint.rstrip('/')}/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    agentkit.otel.instrument(tracer_provider=provider, capture_content=args.capture_content or None)

    agent = build_agent()
    agent.name = "clock"
    print("tool calls:")
    result = agent.run_sync(args.question)
    print(f"answer: {result.output}")
    provider.shutdown()  # sends what is left before the process ends
    print(f"trace sent to {args.endpoint} (project {args.project!r})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
