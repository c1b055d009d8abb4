"""A total deadline for one attempt of a request, cheap enough to arm on every request.

`anyio.move_on_after` arms a timer and a cancel scope per request: about 50,000
instructions on asyncio, a tenth of a whole in-process agent run. On asyncio
(Python 3.11+, which can uncancel a task) the attempts of one client share one
timer instead: entering records the task and its deadline in a dict, leaving
removes it, and the timer, armed for the earliest deadline, fires only when an
attempt may be late. Everywhere else (trio, Python 3.10) `anyio.move_on_after`
does the work. Either way the caller writes::

    with deadlines.move_on_after(seconds) as scope:
        ...  # cancelled when the deadline passes
    if scope.cancelled_caught:
        ...

The expiry is delivered exactly as `asyncio.timeout` delivers it: the task is
cancelled, and the cancellation is taken back when it reaches the end of the
block, unless something else cancelled the task too.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, cast

import anyio

if TYPE_CHECKING:
    import asyncio

__all__ = ["AttemptDeadlines", "DeadlineScope"]

_UNCANCEL = sys.version_info >= (3, 11)  # asyncio's Task.uncancel


class DeadlineScope(Protocol):
    """What `move_on_after` gives: a context manager that says whether it fired."""

    @property
    def cancelled_caught(self) -> bool: ...

    def __enter__(self) -> DeadlineScope: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool: ...


class AttemptDeadlines:
    """The deadlines of one client's attempts in flight.

    Holds the shared timer of the event loop the client was last used on; a
    client used on a new loop starts a new timer there (attempts already in
    flight on the old loop keep theirs).
    """

    __slots__ = ("_timer",)

    def __init__(self) -> None:
        self._timer: _LoopTimer | None = None

    def move_on_after(self, delay: float) -> DeadlineScope:
        """A scope that cancels its block `delay` seconds after it is entered."""
        # Not loaded means no asyncio loop runs: importing it would cost trio
        # programs (and `import agentkit`) 8 ms.
        aio: Any = sys.modules.get("asyncio")
        if aio is not None and _UNCANCEL:
            try:
                loop = aio.get_running_loop()
            except RuntimeError:  # not asyncio: trio, say
                pass
            else:
                task = aio.current_task(loop)
                if task is not None:
                    timer = self._timer
                    if timer is None or timer.loop is not loop:
                        timer = self._timer = _LoopTimer(loop)
                    return _Attempt(timer, cast(_Task, task), loop.time() + delay)
        return anyio.move_on_after(delay)


class _Task(Protocol):
    """What an attempt needs of its asyncio task (`uncancel` is Python 3.11's)."""

    def cancel(self, msg: str | None = None) -> bool: ...

    def cancelling(self) -> int: ...

    def uncancel(self) -> int: ...


class _LoopTimer:
    """One timer on one asyncio loop for all the deadlines of a client's attempts."""

    __slots__ = ("_armed_at", "_handle", "attempts", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.attempts: dict[_Attempt, None] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = 0.0

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed_at = when
        self._handle = self.loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        now = self.loop.time()
        pending = []
        for attempt in self.attempts:
            if attempt.deadline <= now:
                attempt.expire()
            elif not attempt.expired:
                pending.append(attempt.deadline)
        if pending:
            self._arm(min(pending))


class _Attempt:
    """The deadline of one attempt on asyncio, as a context manager."""

    __slots__ = ("_cancelling", "cancelled_caught", "deadline", "expired", "task", "timer")

    def __init__(self, timer: _LoopTimer, task: _Task, deadline: float) -> None:
        self.timer = timer
        self.task = task
        self.deadline = deadline
        self.expired = False
        self.cancelled_caught = False
        self._cancelling = 0

    def __enter__(self) -> _Attempt:
        self._cancelling = self.task.cancelling()
        timer = self.timer
        timer.attempts[self] = None
        # With one delay per client, deadlines come in order: the timer armed for
        # the first of them is early enough for every later one.
        if timer._handle is None or self.deadline < timer._armed_at:
            timer._arm(self.deadline)
        return self

    def expire(self) -> None:
        if not self.expired:
            self.expired = True
            self.task.cancel("attempt_timeout")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        del self.timer.attempts[self]
        if not self.expired:
            return False
        # Take back our cancellation; if none other is pending, the block timed out.
        cancelled = sys.modules["asyncio"].CancelledError  # loaded: the task is asyncio's
        if self.task.uncancel() <= self._cancelling and exc_type is cancelled:
            self.cancelled_caught = True
            return True
        return False
