"""`TemporalEngine`: the `DurableEngine` protocol on Temporal.

The agent loop runs in agentkit's workflow (`agentkit.run`), in Temporal's
sandbox with agentkit and its dependencies passed through; it uses no anyio
primitive there (the engine's `semaphore` and `within` are asyncio's, which
Temporal's workflow event loop makes deterministic). Each step is an activity run
by the agent's step handler in whichever worker takes it, heartbeating while it
runs. Inputs, step payloads and results are plain JSON dicts, carried by
Temporal's default JSON converter.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from temporalio import activity, workflow
from temporalio.common import RetryPolicy, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

from agentkit.durable.engine import JSON, StepHandler, StepKind, Workflow
from agentkit.durable.errors import DurableEngineError, DurableRunError, ReplayMismatchError

if TYPE_CHECKING:
    from temporalio.client import Client
    from temporalio.worker import Worker

    from agentkit._run.result import RunResult
    from agentkit.durable.agent import DurableAgent

__all__ = ["RUN_WORKFLOW", "AgentRunWorkflow", "TemporalEngine", "run_in_workflow"]

T = TypeVar("T")

logger = logging.getLogger("agentkit.durable")

RUN_WORKFLOW = "agentkit.run"
"""The name of agentkit's workflow type: one durable run of a registered agent."""

MODEL_ACTIVITY = "agentkit.model"
TOOL_ACTIVITY = "agentkit.tool"

PASSTHROUGH = ("agentkit", "anyio", "sniffio", "httpx", "httpcore", "h11", "certifi", "idna")
"""Modules the workflow sandbox takes from the worker as they are, rather than
importing them again for each run: agentkit and what its loop imports."""

_registry: dict[str, tuple[TemporalEngine, Workflow, StepHandler]] = {}


def _registered(
    name: str, error: Callable[[str], Exception]
) -> tuple[TemporalEngine, Workflow, StepHandler]:
    """The registered agent `name`, or `error` saying that this worker does not have it."""
    entry = _registry.get(name)
    if entry is None:
        raise error(
            f"this worker has no durable agent {name!r}; its agents are "
            f"{sorted(_registry)}: start the worker with the module that makes it"
        )
    return entry


"""The durable agents of this process by name: the workflow and the activities find
them here (this module is passed through the sandbox, so there is one registry)."""


@workflow.defn(name=RUN_WORKFLOW, sandboxed=True)
class AgentRunWorkflow:
    """One durable run: the agent loop of the registered agent `args["agent"]`, whose
    model requests and tool calls are activities."""

    @workflow.run
    async def run(self, args: dict[str, Any]) -> dict[str, Any]:
        """Run the agent loop on the run's stored input; its JSON output."""
        # A missing agent fails the workflow task, which Temporal retries: a worker that
        # has the agent may take it (or this one, once redeployed with it).
        engine, body, _ = _registered(args["agent"], RuntimeError)
        output = await body(args["inputs"])
        error = output.get("error")
        if error is not None and error.get("type") == "ReplayMismatchError":
            # The history goes on with the steps the recorded agent took: Temporal
            # reports the replay as nondeterministic as soon as it reaches the next one
            # (and the worker fails the run, see `worker`), so this is said in the
            # worker's log too. When the history ends here, this error fails the run.
            logger.error("%s", error["args"][0] if error.get("args") else error)
            raise ApplicationError(
                error["args"][0] if error.get("args") else "ReplayMismatchError",
                error,
                type="ReplayMismatchError",
                non_retryable=True,
            )
        return engine._bounded_output(args["inputs"].get("run_id", "?"), output)


class TemporalEngine:
    """Durable runs on Temporal: the loop runs in agentkit's workflow, each model request
    and each tool call is an activity.

    Args:
        client: A connected `temporalio.client.Client`, or the address of the Temporal
            frontend ("127.0.0.1:7233"), connected on first use.
        task_queue: The task queue of the runs and their steps: workers of this queue
            run them.
        namespace: The namespace, when `client` is an address.
        heartbeat_timeout: A step's activity heartbeats every third of this; a step
            whose worker died is retried after this long without a heartbeat.
        model_timeout: The longest a model request may run (its activity's
            start-to-close timeout), retries of the client included.
        tool_timeout: The longest a tool call may run (its activity's start-to-close
            timeout). A tool's own `timeout` ends it sooner, as a tool error.
        retry_policy: How a step whose activity failed (its worker died, or the
            step handler raised outside the agent loop: a deps factory, say) is
            retried; by default every second, then backing off to a minute, up to
            100 attempts. Model and tool errors are answers, not failures: they are
            not retried here.
        sticky_timeout: How long a run's next workflow task waits for the worker that
            ran its last one, before any worker of the queue takes it: after a worker
            dies, its runs go on elsewhere after this long.
        max_payload_bytes: The largest JSON payload (a step's input or result, a run's
            input or output) sent to Temporal; its server refuses payloads over 2 MB
            by default (`limit.blobSize.error`). A larger one ends the run with
            `DurableEngineError` naming the step and its size.
    """

    steps_in_workflow = False
    """Steps are activities: other tasks, possibly other processes."""

    def __init__(
        self,
        client: Client | str,
        *,
        task_queue: str = "agentkit",
        namespace: str = "default",
        heartbeat_timeout: timedelta = timedelta(seconds=10),
        model_timeout: timedelta = timedelta(minutes=10),
        tool_timeout: timedelta = timedelta(minutes=30),
        retry_policy: RetryPolicy | None = None,
        sticky_timeout: timedelta = timedelta(seconds=2),
        max_payload_bytes: int = 2 * 1024 * 1024,
    ) -> None:
        self._client: Client | None = None if isinstance(client, str) else client
        self.address = client if isinstance(client, str) else None
        self.task_queue = task_queue
        self.namespace = namespace
        self.heartbeat_timeout = heartbeat_timeout
        self.model_timeout = model_timeout
        self.tool_timeout = tool_timeout
        self.retry_policy = retry_policy or RetryPolicy(
            initial_interval=timedelta(seconds=1),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(minutes=1),
            maximum_attempts=100,
        )
        self.sticky_timeout = sticky_timeout
        self.max_payload_bytes = max_payload_bytes
        self._names: set[str] = set()
        self._worker: AbstractAsyncContextManager[Worker] | None = None

    def __repr__(self) -> str:
        where = self.address or "client"
        return f"TemporalEngine({where!r}, task_queue={self.task_queue!r})"

    async def client(self) -> Client:
        """The Temporal client, connected on first use when given an address."""
        if self._client is None:
            from temporalio.client import Client

            assert self.address is not None
            try:
                self._client = await Client.connect(self.address, namespace=self.namespace)
            except Exception as exc:
                raise DurableEngineError(
                    f"TemporalEngine cannot reach the Temporal server at {self.address!r} "
                    f"(namespace {self.namespace!r}): {type(exc).__name__}: {exc}; start it "
                    "(`temporal server start-dev`) or pass its address"
                ) from None
        return self._client

    # --- the DurableEngine protocol ----------------------------------------------------

    def register(self, name: str, workflow: Workflow, *, steps: StepHandler) -> None:
        """Make the durable agent `name` known to this process's workers."""
        entry = _registry.get(name)
        if entry is not None and entry[0] is not self:
            raise DurableRunError(
                f"a durable agent named {name!r} is registered with another TemporalEngine "
                "in this process: give each agent of a process one engine and its own name; "
                "or the module that makes it was imported again inside Temporal's workflow "
                "sandbox: pass it through (engine.worker(modules=[...]), or import it in "
                "workflow.unsafe.imports_passed_through())"
            )
        _registry[name] = (self, workflow, steps)
        self._names.add(name)

    async def step(self, name: str, kind: StepKind, payload: dict[str, JSON]) -> JSON:
        """The step as an activity (`agentkit.model` or `agentkit.tool`) with the step's
        `name` as its summary; on replay Temporal returns its recorded result."""
        size = _size(payload)
        if size > self.max_payload_bytes:
            raise DurableEngineError(
                f"durable run {payload.get('run_id')!r}: the input of step {name} is "
                f"{size} bytes of JSON, over max_payload_bytes={self.max_payload_bytes} "
                "(Temporal refuses payloads over 2 MB by default): keep long documents "
                "out of the conversation (store them, pass a reference), cap tool results "
                "with max_tool_result_chars, or raise the server's limit.blobSize.error "
                "and max_payload_bytes together"
            )
        model = kind == "model"
        try:
            result: JSON = await workflow.execute_activity(
                MODEL_ACTIVITY if model else TOOL_ACTIVITY,
                payload,
                task_queue=self.task_queue,
                start_to_close_timeout=self.model_timeout if model else self.tool_timeout,
                heartbeat_timeout=self.heartbeat_timeout,
                retry_policy=self.retry_policy,
                summary=name,
                result_type=dict,
            )
        except ActivityError as exc:
            cause = exc.cause
            if isinstance(cause, CancelledError):
                raise asyncio.CancelledError from None  # the run's deadline, say
            detail = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
            raise DurableEngineError(
                f"durable run {payload.get('run_id')!r}: step {name} failed and was not "
                f"retried further ({detail}); see the log of the worker that ran it"
            ) from None
        return result

    async def started(self) -> float:
        """The workflow time of the run's first task: the same on replay."""
        return workflow.now().timestamp()

    def semaphore(self, limit: int) -> AbstractAsyncContextManager[Any]:
        """An asyncio semaphore: deterministic on Temporal's workflow event loop."""
        return asyncio.Semaphore(limit)

    async def within(self, deadline: float, body: Callable[[], Awaitable[T]]) -> T:
        """`body()` with a workflow timer at `deadline` (a durable timer: it survives
        workers).

        Raises:
            TimeoutError: The deadline passed.
        """
        left = deadline - workflow.now().timestamp()
        if left <= 0:
            raise TimeoutError("the run's deadline passed")
        try:
            return await asyncio.wait_for(body(), left)
        except asyncio.TimeoutError:
            raise TimeoutError("the run's deadline passed") from None

    async def start(
        self, name: str, run_id: str, inputs: dict[str, JSON], *, queue: str | None = None
    ) -> None:
        """Start workflow `run_id` on the task queue (or attach to it: one run per id,
        running or finished)."""
        from temporalio.exceptions import WorkflowAlreadyStartedError

        args = {"agent": name, "inputs": {**inputs, "run_id": run_id}}
        size = _size(args)
        if size > self.max_payload_bytes:
            raise DurableRunError(
                f"durable run {run_id!r}: its input is {size} bytes of JSON, over "
                f"max_payload_bytes={self.max_payload_bytes}; shorten the history or prompt"
            )
        client = await self.client()
        try:
            await client.start_workflow(
                RUN_WORKFLOW,
                args,
                id=run_id,
                task_queue=queue or self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
        except WorkflowAlreadyStartedError:
            pass  # finished under this id: attach to its result

    async def result(self, run_id: str) -> dict[str, JSON]:
        """Wait for workflow `run_id` to end; its output.

        Raises:
            DurableEngineError: The workflow failed, was terminated or cancelled.
        """
        from temporalio.client import WorkflowFailureError

        handle = (await self.client()).get_workflow_handle(run_id)
        try:
            output: dict[str, JSON] = await handle.result(follow_runs=True)
        except WorkflowFailureError as exc:
            cause = exc.cause
            if isinstance(cause, ApplicationError) and cause.type == "ReplayMismatchError":
                if cause.details:
                    return {"error": cause.details[0]}
            if "TMPRL1100" in str(cause) or "ondeterminism" in str(cause):
                from agentkit.durable import codec

                changed = ReplayMismatchError(
                    f"durable run {run_id!r}: its replay on a worker took another path than "
                    "its history: the agent changed (instructions, tools, model, settings "
                    "or output type) since the run started, so its recorded answers no "
                    "longer fit; nothing was sent to the model (the worker's log names the "
                    "turn). Let runs finish before changing an agent, or register the "
                    f"changed agent under a new name. Temporal: {cause}",
                    messages=[],
                )
                return {"error": codec.encode_error(changed)}
            raise DurableEngineError(
                f"durable run {run_id!r} ended outside the agent loop: "
                f"{type(exc.cause).__name__}: {exc.cause}; see its history in Temporal"
            ) from None
        return output

    async def status(self, run_id: str) -> str | None:
        """Temporal's status of workflow `run_id` ("RUNNING", "COMPLETED", …), or None."""
        from temporalio.service import RPCError, RPCStatusCode

        try:
            described = await (await self.client()).get_workflow_handle(run_id).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        return described.status.name if described.status is not None else "UNKNOWN"

    async def inputs(self, run_id: str) -> dict[str, JSON] | None:
        """The input workflow `run_id` was started with (from its first history
        event), or None."""
        from temporalio.service import RPCError, RPCStatusCode

        client = await self.client()
        handle = client.get_workflow_handle(run_id)
        try:
            async for event in handle.fetch_history_events():
                attributes = event.workflow_execution_started_event_attributes
                payloads = list(attributes.input.payloads)
                if not payloads:
                    return {}
                (args,) = await client.data_converter.decode(payloads, [dict])
                inputs: dict[str, JSON] = args.get("inputs", {})
                return inputs
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        return None

    # --- workers ---------------------------------------------------------------------------

    def activities(self) -> list[Callable[..., Any]]:
        """agentkit's activities for this engine's agents, for a `Worker` of your own
        (with `AgentRunWorkflow`, or your workflow calling `run_in_workflow`)."""
        engine = self

        @activity.defn(name=MODEL_ACTIVITY)
        async def model(payload: dict[str, Any]) -> dict[str, Any]:
            return await engine._run_activity("model", payload)

        @activity.defn(name=TOOL_ACTIVITY)
        async def tool(payload: dict[str, Any]) -> dict[str, Any]:
            return await engine._run_activity("tool", payload)

        return [model, tool]

    async def _run_activity(self, kind: StepKind, payload: dict[str, Any]) -> dict[str, Any]:
        handler = _registered(payload["agent"], ApplicationError)[2]
        beat = max(self.heartbeat_timeout.total_seconds() / 3, 0.05)
        task = asyncio.ensure_future(handler(kind, payload))
        try:
            # Heartbeats while the step runs: a worker that dies stops them, and the
            # step is retried after the heartbeat timeout, not its start-to-close one.
            while True:
                done, _ = await asyncio.wait({task}, timeout=beat)
                if done:
                    break
                activity.heartbeat()
        finally:
            if not task.done():
                task.cancel()  # the activity was cancelled (its run ended, say)
                await asyncio.gather(task, return_exceptions=True)
        result: dict[str, Any] = task.result()
        size = _size(result)
        if size > self.max_payload_bytes:
            raise ApplicationError(
                f"the result of this {kind} step is {size} bytes of JSON, over "
                f"max_payload_bytes={self.max_payload_bytes}: cap tool results with "
                "max_tool_result_chars, or raise the server's limit.blobSize.error and "
                "max_payload_bytes together",
                non_retryable=True,
            )
        return result

    def _bounded_output(self, run_id: str, output: dict[str, Any]) -> dict[str, Any]:
        size = _size(output)
        if size <= self.max_payload_bytes:
            return output
        from agentkit.durable import codec

        error = DurableEngineError(
            f"durable run {run_id!r}: its output (with the whole conversation) is {size} "
            f"bytes of JSON, over max_payload_bytes={self.max_payload_bytes}; keep long "
            "documents out of the conversation, or raise the server's limit.blobSize.error "
            "and max_payload_bytes together"
        )
        return {"error": codec.encode_error(error)}

    @asynccontextmanager
    async def worker(
        self,
        *,
        task_queue: str | None = None,
        max_concurrent_activities: int | None = None,
        max_concurrent_workflow_tasks: int | None = None,
        modules: Sequence[str] = (),
        workflows: Sequence[type] = (),
        **options: Any,
    ) -> AsyncIterator[Worker]:
        """Run a Temporal worker of the task queue in this process until the block ends:
        it runs the runs and steps of this process's durable agents.

        Args:
            task_queue: The queue; this engine's by default.
            max_concurrent_activities: Steps at a time in this worker (Temporal's
                default when None).
            max_concurrent_workflow_tasks: Workflow tasks at a time.
            modules: More modules to pass through the workflow sandbox (those your
                instructions functions or output types import while a run replays).
            workflows: Workflows of your own to run beside agentkit's (those that
                call `run_in_workflow`).
            **options: Other arguments of `temporalio.worker.Worker`.

        Example:
            >>> async with engine.worker():
            ...     await anyio.sleep_forever()
        """
        from temporalio.worker import Worker
        from temporalio.worker.workflow_sandbox import (
            SandboxedWorkflowRunner,
            SandboxRestrictions,
        )

        from agentkit.durable.agent import _require_asyncio

        _require_asyncio("a Temporal worker")
        restrictions = SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH, *modules)
        limits: dict[str, Any] = {}
        if max_concurrent_activities is not None:
            limits["max_concurrent_activities"] = max_concurrent_activities
        if max_concurrent_workflow_tasks is not None:
            limits["max_concurrent_workflow_tasks"] = max_concurrent_workflow_tasks
        options.setdefault("sticky_queue_schedule_to_start_timeout", self.sticky_timeout)
        # A run whose agent changed so that its replay takes another path than its
        # history fails, rather than retrying its workflow task until redeployed.
        options.setdefault("workflow_failure_exception_types", [workflow.NondeterminismError])
        worker = Worker(
            await self.client(),
            task_queue=task_queue or self.task_queue,
            workflows=[AgentRunWorkflow, *workflows],
            activities=self.activities(),
            workflow_runner=SandboxedWorkflowRunner(restrictions=restrictions),
            **limits,
            **options,
        )
        async with worker:
            yield worker

    async def __aenter__(self) -> TemporalEngine:
        """Run a worker of the task queue in this process (see `worker`)."""
        if self._worker is not None:
            raise DurableRunError(f"{self!r} is already running a worker in this process")
        self._worker = self.worker()
        await self._worker.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        running, self._worker = self._worker, None
        if running is not None:
            await running.__aexit__(exc_type, exc, tb)


async def run_in_workflow(
    agent: DurableAgent[T],
    prompt: Any,
    *,
    run_id: str | None = None,
    message_history: Any = None,
    deps: Any = None,
    timeout: float | None = None,
) -> RunResult[T]:
    """Run a durable agent inside a workflow of your own: call it from your
    `@workflow.run` (or a signal handler). Each model request and tool call is an
    agentkit activity, so the worker must also have `engine.activities()`, and the
    sandbox must pass through `agentkit` (see `PASSTHROUGH`).

    Args:
        agent: A `DurableAgent` on a `TemporalEngine`.
        prompt: The user's message.
        run_id: The run's id as tools see it (`ctx.run_id`); your workflow's id by
            default. Give each run of one workflow its own.
        message_history: An earlier conversation to continue.
        deps: JSON values for `ctx.deps` (without a deps factory).
        timeout: Seconds for the run, on the workflow's clock.

    Raises:
        AgentRunError: The run ended without an answer.
    """
    if not workflow.in_workflow():
        raise DurableRunError(
            f"run_in_workflow({agent.name!r}) runs only inside a Temporal workflow; "
            "outside one use DurableAgent.run"
        )
    run_id = run_id or workflow.info().workflow_id
    inputs = agent.inputs(prompt, message_history=message_history, deps=deps, timeout=timeout)
    inputs["run_id"] = run_id
    data = await agent._workflow(inputs)
    return agent._result_from(run_id, data)


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
