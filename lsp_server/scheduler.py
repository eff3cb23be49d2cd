"""One engine worker, one live job per document.

The model runs on a single worker thread (the event loop only reads messages and edits documents), so a job
for a document that has moved on must stop quickly: a newer job for the same key supersedes the older one, and
a cancelled awaiting task ($/cancelRequest) stops its job. Stopping sets a flag the engine polls between two
denoising steps (`should_stop`); a job stopped before it started ends without touching the model. The time
from stop to the worker being free again is recorded (`cancel_to_idle`).
"""

import asyncio
import contextlib
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from engine.errors import Cancelled

T = TypeVar("T")


class _Job:
    def __init__(self) -> None:
        self.stopped_at: float | None = None  # perf_counter() when asked to stop

    def stop(self) -> None:
        if self.stopped_at is None:
            self.stopped_at = time.perf_counter()

    def should_stop(self) -> bool:
        return self.stopped_at is not None


class Scheduler:
    def __init__(self, on_busy: Callable[[bool], None] = lambda busy: None) -> None:
        """`on_busy(busy)` runs on the event loop when the worker starts or finishes a job."""
        # A daemon thread, not a ThreadPoolExecutor: `exit` must not wait for a model load to finish.
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], Future]] = queue.SimpleQueue()
        threading.Thread(target=self._work, name="blockfill-engine", daemon=True).start()
        self._live: dict[str, _Job] = {}
        self._on_busy = on_busy
        self._pending = 0  # jobs submitted and not finished on the worker; touched on the event loop only
        self.cancel_to_idle: deque[float] = deque(maxlen=1000)  # seconds; appended from the worker

    async def run(self, key: str, work: Callable[[Callable[[], bool]], T]) -> T:
        """Run `work(should_stop)` on the worker, superseding the live job for `key`.

        Raises engine.errors.Cancelled if superseded; asyncio.CancelledError (after stopping the job) if the
        awaiting task is cancelled.
        """
        self.stop(key)
        job = self._live[key] = _Job()
        try:
            return await self._submit(lambda: self._run_job(job, work))
        except asyncio.CancelledError:
            job.stop()
            raise
        finally:
            if self._live.get(key) is job:
                del self._live[key]

    async def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the worker, in turn with the jobs (loading or swapping the model)."""
        return await self._submit(fn)

    def stop(self, key: str) -> None:
        """Stop the live job for `key`, if any: at its next denoising step, or before it starts."""
        job = self._live.pop(key, None)
        if job is not None:
            job.stop()

    def shutdown(self) -> None:
        for job in self._live.values():
            job.stop()

    async def _submit(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        self._pending += 1
        if self._pending == 1:
            self._on_busy(True)
        future: Future[T] = Future()
        # Idle is when the worker is done, which may be after the awaiting task was cancelled.
        future.add_done_callback(lambda _: self._call_soon(loop, self._finished))
        self._queue.put((fn, future))
        return await asyncio.wrap_future(future)

    def _work(self) -> None:
        while True:
            fn, future = self._queue.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as err:  # handed to the awaiting task, which decides
                future.set_exception(err)

    @staticmethod
    def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: the server is exiting
            loop.call_soon_threadsafe(callback)

    def _finished(self) -> None:
        self._pending -= 1
        if self._pending == 0:
            self._on_busy(False)

    def _run_job(self, job: _Job, work: Callable[[Callable[[], bool]], T]) -> T:
        if job.should_stop():
            raise Cancelled("superseded before it started")
        try:
            return work(job.should_stop)
        except Cancelled:
            if job.stopped_at is not None:
                self.cancel_to_idle.append(time.perf_counter() - job.stopped_at)
            raise
