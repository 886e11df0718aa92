"""A test double for Hugging Face's `spaces` package (ZeroGPU), not the real one: `spaces.GPU` behaving like
spaces 0.51.3's where an app can tell the difference (read from spaces/zero/decorator.py and wrappers.py).

- Only where SPACES_ZERO_GPU is "1", "t" or "true" when this module is imported; elsewhere GPU returns the
  function unchanged.
- `GPU`, `GPU(duration=...)`, `GPU(45)`; `duration` seconds (default 60) or a callable of the call's arguments.
- Each call runs in a child process forked from the caller (`multiprocessing.get_context("fork")`); the
  arguments go in pickled, the function runs in a thread of the child, and every value a generator yields comes
  back pickled and is re-yielded by the caller. A decorated function called inside a child runs directly.
- A gr.Error raised in the child reaches the caller as it is; any other exception only by its class name
  (gr.Error(<class name>, title="ZeroGPU worker error")), as in the real wrapper. A value that cannot be pickled
  ends the call the same way (PicklingError).
- Closing the caller's generator (Stop, a closed tab: GeneratorExit) sets the child's stop event; the child
  closes the generator at its next yield (its `finally:` runs there) and the caller waits for that.
- Past `duration` the child is killed and the caller raises gr.Error("GPU task aborted").
- Values cross through multiprocessing's pickler, which torch extends: CPU tensors travel as shared memory, not
  bytes; the child stays until the caller has read everything (the real worker outlives the call).

Where it differs from the real package (the report in the tests says the same):
- The real package keeps a worker process alive and may reuse it for a later call on the same GPU; this double
  forks a fresh child per call and joins it afterwards, so "no process left" is checkable here but module state
  surviving between calls in a worker is not reproduced.
- The real scheduler (a remote service) decides when to abort past the duration, after a warning toast; this
  double kills at exactly `duration` seconds (times `DURATION_FACTOR`), with no warning.
- No GPU, no quota, no scheduling queue; no CUDA emulation in the caller (`torch.cuda.is_available()` stays what
  it is here), no closing of the server's file descriptors in the child.
"""
from __future__ import annotations

import functools
import inspect
import multiprocessing
import os
import pickle
import threading
import time
import traceback

import gradio as gr

ZERO_GPU = os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")  # read once, as spaces.config does
DEFAULT_DURATION = 60  # s, spaces.zero.client.DEFAULT_SCHEDULE_DURATION
DURATION_FACTOR = 1.0  # the H200 entry of spaces/zero/configs.json
CONTEXT = multiprocessing.get_context("fork")
forked = False  # True in a child: a decorated function called there runs directly
calls: list[tuple[str, float]] = []  # (function name, requested duration s) per call, in the caller


def GPU(task=None, *, duration=None, size=None, **kwargs):  # noqa: N802 (the real name)
    if not callable(task):
        if task is not None and not isinstance(task, str):  # @spaces.GPU(45)
            duration = task
        return functools.partial(_wrap, duration=duration)
    return _wrap(task, duration=duration)


def _wrap(task, duration):
    if not ZERO_GPU:
        return task
    if inspect.iscoroutinefunction(task):
        raise NotImplementedError
    wrapper = _generator_wrapper if inspect.isgeneratorfunction(task) else _function_wrapper
    decorated = functools.wraps(task)(wrapper(task, duration))
    decorated.zerogpu = None
    return decorated


def _seconds(duration, args, kwargs) -> float:
    value = duration(*args, **kwargs) if callable(duration) else duration
    if value is None:
        value = DEFAULT_DURATION
    return float(getattr(value, "total_seconds", lambda: value)()) * DURATION_FACTOR


# ---- the child ---------------------------------------------------------------------------------------------


def _failure(e: BaseException) -> tuple:
    """What the real exception_result keeps: a gr.Error itself, else only the class name."""
    if isinstance(e, gr.Error):
        return ("error", e, None)
    return ("error", None, type(e).__name__, "".join(traceback.format_exception(e)))


def _send(results, message) -> bool:
    try:
        results.send(message)  # pickles here, in this thread: an unpicklable value fails now
        return True
    except Exception as e:
        if "pickle" not in str(e).lower() and not isinstance(e, pickle.PicklingError):
            raise
        results.send(("error", None, "PicklingError", str(e)))
        return False


def _child(task, arguments, results, stop, released) -> None:
    global forked
    forked = True
    args, kwargs = pickle.loads(arguments)

    def iterate():
        try:
            if not inspect.isgeneratorfunction(task):
                _send(results, ("ok", task(*args, **kwargs)))
                return
            generator = task(*args, **kwargs)
            for value in generator:
                if stop.is_set():  # the caller went away: close at this yield, so that `finally:` runs here
                    generator.close()
                    return
                if not _send(results, ("ok", value)):
                    generator.close()
                    return
        except Exception as e:
            results.send(_failure(e))

    worker = threading.Thread(target=iterate, name="zerogpu-task")  # the real one runs the task in a thread too
    worker.start()
    worker.join()
    results.send(("end",))
    # Stay until the caller has read everything: torch pickles CPU tensors as shared memory whose file descriptors
    # the receiver fetches from this process (torch.multiprocessing's reductions, used by multiprocessing's
    # pickler), as it does from the real package's long-lived worker.
    released.wait(60)


# ---- the caller --------------------------------------------------------------------------------------------


class _Call:
    """One call's child process, its result pipe and stop event."""

    def __init__(self, task, duration, args, kwargs):
        seconds = _seconds(duration, args, kwargs)
        calls.append((task.__name__, seconds))
        arguments = pickle.dumps((args, kwargs))  # unpicklable arguments fail here, in the caller, as for real
        self.results, sender = CONTEXT.Pipe(duplex=False)
        self.stop, self.released = CONTEXT.Event(), CONTEXT.Event()
        self.deadline = time.monotonic() + seconds
        self.process = CONTEXT.Process(target=_child, args=(task, arguments, sender, self.stop, self.released),
                                       daemon=True)
        self.process.start()
        sender.close()

    def receive(self):
        """The child's next message; past the deadline the child is killed and the call aborted."""
        if not self.results.poll(max(0.0, self.deadline - time.monotonic())):
            self.kill()
            raise gr.Error("GPU task aborted", title="ZeroGPU worker error", print_exception=False)
        try:
            return self.results.recv()
        except EOFError:  # the child died (killed, crashed) without saying goodbye
            self.kill()
            raise gr.Error("GPU task aborted", title="ZeroGPU worker error", print_exception=False) from None

    def drain(self) -> None:
        """After the caller stopped listening: wait for the child to close its generator and end."""
        try:
            while self.receive()[0] != "end":
                pass
        except gr.Error:
            pass

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()

    def close(self) -> None:
        self.released.set()
        self.process.join(5)
        self.kill()
        self.process.join()
        self.results.close()


def _raise(message):
    _, error, name, *trace = message
    if error is not None:
        raise error
    print(*trace)
    raise gr.Error(name, title="ZeroGPU worker error", print_exception=False)


def _generator_wrapper(task, duration):
    def gradio_handler(*args, **kwargs):
        if forked:
            yield from task(*args, **kwargs)
            return
        call = _Call(task, duration, args, kwargs)
        try:
            while True:
                message = call.receive()
                if message[0] == "end":
                    return
                if message[0] == "error":
                    call.drain()
                    _raise(message)
                try:
                    yield message[1]
                except GeneratorExit:
                    call.stop.set()
                    call.drain()
                    raise
        finally:
            call.close()
    return gradio_handler


def _function_wrapper(task, duration):
    def gradio_handler(*args, **kwargs):
        if forked:
            return task(*args, **kwargs)
        call = _Call(task, duration, args, kwargs)
        try:
            message = call.receive()
            call.drain()
            if message[0] == "error":
                _raise(message)
            return message[1]
        finally:
            call.close()
    return gradio_handler
