"""The drill's process group: start children on loopback, read their READY line, stop each by its pid.

Why a context manager: every process a drill starts must be stopped at the end, also when the
drill fails or the user presses Ctrl-C (or sends SIGTERM). Children run in their own session, so a
Ctrl-C reaches only the orchestrator, which then stops them one by one by pid (SIGTERM, then
SIGKILL after a grace period). Each child also has its own ``--max-s`` bound.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import threading
import time
from pathlib import Path

__all__ = ["ProcessGroup", "DrillProcessError"]


class DrillProcessError(RuntimeError):
    """A drill process did not start, or died."""


class ProcessGroup:
    def __init__(self, log_dir: Path, grace_s: float = 5.0) -> None:
        self.log_dir, self.grace_s = log_dir, grace_s
        self.procs: dict[str, subprocess.Popen] = {}
        self._old_term = None

    def __enter__(self) -> ProcessGroup:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if threading.current_thread() is threading.main_thread():
            self._old_term = signal.signal(signal.SIGTERM, _interrupt)
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.stop_all()
        finally:
            if self._old_term is not None:
                signal.signal(signal.SIGTERM, self._old_term)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start ``argv`` with stdin/stdout piped and stderr to ``<log_dir>/<name>.log``."""
        log = (self.log_dir / f"{name}.log").open("w")
        full_env = {**os.environ, **(env or {})}
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=full_env, text=True,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        self.procs[name] = proc
        return proc

    def ready(self, name: str, timeout_s: float) -> str:
        """The text after ``READY`` in the child's first stdout line; DrillProcessError if none in time."""
        proc = self.procs[name]
        deadline = time.monotonic() + timeout_s
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if sel.select(timeout=0.1):
                    line = proc.stdout.readline()
                    if line.startswith("READY "):
                        return line.split(" ", 1)[1].strip()
                    if not line and proc.poll() is not None:
                        break
                elif proc.poll() is not None:
                    break
        raise DrillProcessError(f"{name} did not start (exit {proc.poll()}): see {self.log_dir / (name + '.log')}")

    def send(self, name: str, line: str) -> None:
        self.procs[name].stdin.write(line + "\n")
        self.procs[name].stdin.flush()

    def wait(self, name: str, timeout_s: float) -> int:
        try:
            return self.procs[name].wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise DrillProcessError(f"{name} still running after {timeout_s:.0f} s") from None

    def alive(self) -> list[int]:
        return [p.pid for p in self.procs.values() if p.poll() is None]

    def stop_all(self) -> None:
        """SIGTERM each child by pid, then SIGKILL those still alive after the grace period."""
        for proc in reversed(self.procs.values()):
            if proc.poll() is None:
                _signal(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal(proc.pid, signal.SIGKILL)
                proc.wait()
            for stream in (proc.stdin, proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _interrupt(*_args) -> None:
    raise KeyboardInterrupt("SIGTERM")
