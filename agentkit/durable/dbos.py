"""`DBOSEngine`: durable runs on DBOS Transact, over SQLite (embedded) or PostgreSQL.

Everything DBOS-specific is here. Choices made for agentkit:

- Step results, run inputs and outputs are stored as JSON (DBOS's portable JSON
  serializer), never pickle.
- The application version is pinned (`app_version`): DBOS recovers only the
  runs of its own version, and its default is a hash of the source.
- A SQLite database is switched to WAL mode before DBOS opens it.
- Steps are not retried by DBOS: a model request has the client's retries, and
  a tool call answers every failure itself.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, closing
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from agentkit.durable.engine import JSON, StepHandler, StepKind, Workflow
from agentkit.durable.errors import DurableEngineError, DurableRunError

T = TypeVar("T")

if TYPE_CHECKING:
    from dbos import DBOSClient

__all__ = ["DBOSEngine"]

_PREFIX = "agentkit:"

# DBOS is one instance per process: a second engine's launch would silently run on
# the first one's database. The engine running in this process, if any.
_running: DBOSEngine | None = None


class DBOSEngine:
    """A durable engine on DBOS.

    Args:
        url: The system database: `"sqlite:///path.sqlite"` (the embedded default,
            one process) or `"postgresql://user:password@host/db"` (several
            processes share runs and queues; DBOS creates the database).
        app_name: The DBOS application name.
        executor_id: This process's id among the app's processes. On start, the
            engine recovers the unfinished runs of its own id, so give a
            restarted process the id of the one it replaces (a StatefulSet pod
            name, say). Defaults to `DBOS__VMID` or `"local"`.
        app_version: Recorded with each run; a process recovers only runs of its
            own version. Pinned, so that a deploy picks up the runs of the last
            one (a changed agent is caught by the request digests).
        poll_interval: Seconds between a worker's polls of its queue, and between
            checks for a run's end.
        max_recovery_attempts: How many times a run is started again after the
            process running it died, before it is given up (a run whose tool
            crashes its process each time would otherwise take every process that
            recovers it down with it). A run given up ends with
            `DurableEngineError`. A graceful shutdown (a deploy) counts too.

    Use it as an async context manager around the code that runs agents:
    entering it launches DBOS and starts recovering this executor's runs.
    """

    def __init__(
        self,
        url: str = "sqlite:///agentkit.sqlite",
        *,
        app_name: str = "agentkit",
        executor_id: str | None = None,
        app_version: str = "agentkit-durable-1",
        poll_interval: float = 1.0,
        max_recovery_attempts: int = 100,
    ) -> None:
        if not url.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")):
            raise DurableRunError(
                f"DBOSEngine: the url must be sqlite:///… or postgresql://…, got "
                f"{url.split(':', 1)[0]!r}"
            )
        if url.startswith("sqlite:") and (problem := sqlite_problem()) is not None:
            raise DurableRunError(f"DBOSEngine({url.split('?', 1)[0]!r}): {problem}")
        self.url = url
        self.app_name = app_name
        self.executor_id = executor_id
        self.app_version = app_version
        self.poll_interval = poll_interval
        self.max_recovery_attempts = max_recovery_attempts
        self._workflows: dict[str, Any] = {}
        self._handlers: dict[str, StepHandler] = {}
        self._launched = False
        self._client: DBOSClient | None = None
        self._queues: dict[str, int | None] = {}

    def __repr__(self) -> str:
        from agentkit._redact import display_url

        return f"DBOSEngine({display_url(self.url)!r})"

    # --- the DurableEngine protocol ----------------------------------------------------

    steps_in_workflow = True
    """DBOS runs each step in the workflow's own task."""

    def register(self, name: str, workflow: Workflow, *, steps: StepHandler) -> None:
        """Register the body of the runs called `name` as a DBOS workflow."""
        from dbos import DBOS
        from dbos._serialization import WorkflowSerializationFormat

        if _running is not None:
            raise DurableRunError(
                f"DurableAgent {name!r} was made after a DBOSEngine started in this "
                "process; make durable agents at import time, before `async with engine`"
            )

        async def run(inputs: dict[str, JSON]) -> dict[str, JSON]:
            return await workflow(inputs)

        self._handlers[name] = steps

        run.__qualname__ = run.__name__ = f"agentkit_run_{name}"
        self._workflows[name] = DBOS.workflow(
            name=_PREFIX + name,
            serialization_type=WorkflowSerializationFormat.PORTABLE,
            max_recovery_attempts=self.max_recovery_attempts,
        )(run)

    async def step(self, name: str, kind: StepKind, payload: dict[str, JSON]) -> JSON:
        """Run the step through its agent's handler, in this task, as a DBOS step named
        `name` (not retried by DBOS)."""
        from dbos import DBOS

        handler = self._handlers[payload["agent"]]

        async def function() -> JSON:
            return await handler(kind, payload)

        return await DBOS.run_step_async({"name": name, "retries_allowed": False}, function)

    async def started(self) -> float:
        """The run's first start time, a DBOS step named `started`."""
        from dbos import DBOS

        async def now() -> float:
            return time.time()  # wall-clock: a recovered run may run on another machine

        started: float = await DBOS.run_step_async({"name": "started"}, now)
        return started

    def semaphore(self, limit: int) -> AbstractAsyncContextManager[Any]:
        """An anyio semaphore: DBOS workflows are plain coroutines."""
        import anyio

        return anyio.Semaphore(limit)

    async def within(self, deadline: float, body: Callable[[], Awaitable[T]]) -> T:
        """`body()` in an anyio cancel scope that ends at `deadline`.

        Raises:
            TimeoutError: The deadline passed.
        """
        import anyio

        with anyio.move_on_after(deadline - time.time()) as scope:
            return await body()
        if scope.cancelled_caught:
            raise TimeoutError("the run's deadline passed")
        raise AssertionError("unreachable")  # pragma: no cover

    async def start(
        self, name: str, run_id: str, inputs: dict[str, JSON], *, queue: str | None = None
    ) -> None:
        """Start run `run_id` here, or put it on `queue` for a worker; attach to it if
        it exists."""
        if queue is not None or not self._launched:
            await self.enqueue(name, run_id, inputs, queue=queue or "agentkit_runs")
            return
        from dbos import DBOS, SetWorkflowID

        with SetWorkflowID(run_id):
            await DBOS.start_workflow_async(self._workflows[name], inputs)

    async def result(self, run_id: str) -> dict[str, JSON]:
        """Wait for run `run_id` to end; its output.

        Raises:
            DurableEngineError: The run failed outside the agent loop (its workflow
                raised, or DBOS gave up recovering it).
        """
        try:
            return await self._result(run_id)
        except Exception as exc:
            if "MaxRecoveryAttempts" in type(exc).__name__:
                raise DurableEngineError(
                    f"durable run {run_id!r} was given up: the processes running it died "
                    f"more than max_recovery_attempts={self.max_recovery_attempts} times "
                    "(a tool that crashes its process or exhausts its memory?); find the "
                    "cause in their logs, then start it under a new run id"
                ) from exc
            raise DurableEngineError(
                f"durable run {run_id!r} failed outside the agent loop: "
                f"{type(exc).__name__}: {exc}; see the log of the process that ran it"
            ) from exc

    async def _result(self, run_id: str) -> dict[str, JSON]:
        if self._launched:
            from dbos import DBOS

            local: Any = await DBOS.retrieve_workflow_async(run_id)
            output: dict[str, JSON] = await local.get_result(
                polling_interval_sec=min(self.poll_interval, 0.1)
            )
            return output
        handle: Any = await (await self._dbos_client()).retrieve_workflow_async(run_id)
        output = await handle.get_result(polling_interval_sec=min(self.poll_interval, 0.2))
        return output

    async def status(self, run_id: str) -> str | None:
        """DBOS's status of run `run_id`, or None."""
        import anyio.to_thread

        client = await self._dbos_client()
        rows = await anyio.to_thread.run_sync(
            lambda: client.list_workflows(
                workflow_ids=[run_id], load_input=False, load_output=False
            )
        )
        return str(rows[0].status) if rows else None

    async def inputs(self, run_id: str) -> dict[str, JSON] | None:
        """The input run `run_id` was started with, or None if there is no such run."""
        import anyio.to_thread

        client = await self._dbos_client()
        rows = await anyio.to_thread.run_sync(
            lambda: client.list_workflows(workflow_ids=[run_id], load_output=False)
        )
        if not rows:
            return None
        stored: Any = rows[0].input
        args = stored.get("args") if isinstance(stored, dict) else None
        return args[0] if args and isinstance(args[0], dict) else {}

    # --- lifetime ------------------------------------------------------------------------

    async def __aenter__(self) -> DBOSEngine:
        await self.launch()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    async def launch(self, *, queues: dict[str, int | None] | None = None) -> None:
        """Launch DBOS in this process (on the running asyncio loop) and recover this
        executor's unfinished runs. `queues` (name → runs at a time per worker) makes
        this process a worker of those queues."""
        from agentkit.durable.agent import _require_asyncio

        _require_asyncio("engine launch")
        from dbos import DBOS, DBOSConfig
        from dbos._serialization import DBOSPortableJSONSerializer

        global _running
        if self._launched:
            raise DurableRunError("this DBOSEngine is already running")
        if _running is not None:
            raise DurableRunError(
                f"{self!r} cannot start: {_running!r} is running in this process, and DBOS "
                "runs one engine per process; give all durable agents of a process one "
                "engine"
            )
        if (
            not self.url.startswith("sqlite:")
            and self.executor_id is None
            and not os.environ.get("DBOS__VMID")
        ):
            # Every process would be "local" and recover the others' runs while they run.
            raise DurableRunError(
                "DBOSEngine on PostgreSQL needs an executor_id per process (a pod or host "
                "name, stable across its restarts): DBOSEngine(url, executor_id=...)"
            )
        _use_wal(self.url)
        config: DBOSConfig = {
            "name": self.app_name,
            "system_database_url": self.url,
            "application_version": self.app_version,
            "serializer": DBOSPortableJSONSerializer(),
            "log_level": os.environ.get("AGENTKIT_DBOS_LOG_LEVEL", "WARNING"),
            "notification_listener_polling_interval_sec": min(self.poll_interval, 1.0),
        }
        if self.executor_id is not None:
            config["executor_id"] = self.executor_id
        queues = dict(queues or {})
        queues.setdefault("agentkit_runs", None)
        try:
            DBOS(config=config)
            DBOS.listen_queues(list(queues))
            DBOS.launch()
        except BaseException:
            DBOS.destroy()  # a half-launched DBOS would be reused by the next attempt
            raise
        self._launched = True
        _running = self
        try:
            for queue, concurrency in queues.items():
                await DBOS.register_queue_async(
                    queue,
                    worker_concurrency=concurrency,
                    polling_interval_sec=self.poll_interval,
                    on_conflict="always_update",
                )
        except BaseException:
            self.shutdown()
            raise

    def shutdown(self) -> None:
        """Stop DBOS in this process: runs in flight stop and are recovered by the next
        process with this executor id."""
        from dbos import DBOS

        if self._client is not None:
            self._client.destroy()
            self._client = None
        global _running
        if self._launched:
            self._launched = False
            _running = None
            DBOS.destroy()

    @asynccontextmanager
    async def worker(self, queue: str, *, concurrency: int | None = None) -> AsyncIterator[None]:
        """Run this process as a worker of `queue` until the block ends: it takes runs
        enqueued by any process (`DurableAgent.start(queue=...)`, or `enqueue` from a
        process without the agents), at most `concurrency` at a time.

        Example:
            >>> async with engine.worker("agent_runs", concurrency=4):
            ...     await anyio.sleep_forever()
        """
        await self.launch(queues={queue: concurrency})
        try:
            yield
        finally:
            self.shutdown()

    # --- without the agents: enqueue, look up, recover -------------------------------------

    async def enqueue(self, name: str, run_id: str, inputs: dict[str, JSON], *, queue: str) -> None:
        """Put run `run_id` of the durable agent `name` on `queue` for a worker, from
        any process, launched or not; a run id already used is not enqueued again.

        `inputs` is `DurableAgent.inputs(...)`, with `run_id` set.
        """
        from dbos._serialization import WorkflowSerializationFormat

        inputs = {**inputs, "run_id": run_id}
        await (await self._dbos_client()).enqueue_async(
            {
                "workflow_name": _PREFIX + name,
                "queue_name": queue,
                "workflow_id": run_id,
                "app_version": self.app_version,
                "application_name": self.app_name,
                "serialization_type": WorkflowSerializationFormat.PORTABLE,
            },
            inputs,
        )

    async def recover_executor(self, executor_id: str, *, queue: str) -> list[str]:
        """Put the unfinished runs of a dead executor back on `queue`, for the live
        workers to take, within the queue's concurrency limit. Returns their ids.

        Only call this for an executor you know is gone: a live one would go on
        running the same runs (each step is recorded once, but in-flight steps would
        run twice). Restarting a process with the dead one's `executor_id` is the
        other way, and needs no such care.
        """
        import anyio.to_thread

        client = await self._dbos_client()

        def recover() -> list[str]:
            rows = client.list_workflows(status="PENDING", executor_id=executor_id)
            ids = [row.workflow_id for row in rows]
            for run_id in ids:
                client.resume_workflow(run_id, queue_name=queue)
            return ids

        return await anyio.to_thread.run_sync(recover)

    async def _dbos_client(self) -> DBOSClient:
        """DBOS's client for the system database, which it creates or migrates first:
        a process that only enqueues runs may be the first to use the database."""
        if self._client is None:
            import anyio.to_thread

            client = await anyio.to_thread.run_sync(self._new_client)
            if self._client is None:
                self._client = client
            else:  # another task made one meanwhile
                client.destroy()
        return self._client

    def _new_client(self) -> DBOSClient:
        from dbos import DBOSClient
        from dbos._serialization import DBOSPortableJSONSerializer

        _use_wal(self.url)
        client = DBOSClient(
            system_database_url=self.url, serializer=DBOSPortableJSONSerializer(), lazy=True
        )
        try:
            # DBOSClient never migrates; DBOS's launch does the same, and several
            # processes migrating at once is safe (the migration takes a lock).
            client._sys_db.run_migrations()
        except Exception as exc:
            client.destroy()
            from agentkit._redact import display_url

            raise DurableEngineError(
                f"the durable engine's database {display_url(self.url)} cannot be used: "
                f"{type(exc).__name__}: {exc}; check that it is reachable and that its user "
                "may create tables"
            ) from None
        return client


def _use_wal(url: str) -> None:
    """Switch a SQLite database file to WAL mode (it stays so): a commit costs less,
    and readers do not block the writer."""
    if not url.startswith("sqlite:///"):
        return
    path = url[len("sqlite:///") :].split("?", 1)[0]
    if not path or path == ":memory:":
        return
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    # Processes starting together on a new file wait for each other: switching the
    # mode needs the file to itself, and another may be creating DBOS's tables.
    with closing(sqlite3.connect(path, timeout=60.0)) as connection:
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
        if str(mode).lower() != "wal":
            connection.execute("PRAGMA journal_mode=WAL")


def sqlite_problem(
    python: tuple[int, ...] | None = None, sqlite: tuple[int, ...] | None = None
) -> str | None:
    """Why DBOS cannot keep runs in SQLite here, or None when it can.

    On Python 3.12 and later DBOS timestamps its SQLite rows with
    `unixepoch('subsec')`, which SQLite has only from 3.42: an older library gives
    NULL, and the first run fails on a NOT NULL constraint deep inside DBOS.
    """
    version = sqlite3.sqlite_version_info if sqlite is None else sqlite
    running = tuple(sys.version_info) if python is None else python
    if tuple(running[:2]) >= (3, 12) and tuple(version) < (3, 42):
        shown = ".".join(map(str, version))
        return (
            f"DBOS needs SQLite 3.42 or later on Python 3.12+, and this Python's sqlite3 "
            f"module has SQLite {shown}: keep runs in PostgreSQL "
            "(DBOSEngine('postgresql://...')), or use a Python built with a newer SQLite "
            "(or Python 3.10/3.11)"
        )
    return None
