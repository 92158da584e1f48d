"""A process that only forks: where a fork-mode worker's task processes come from.

A fork copies the page tables of the process it is made from, and from then
on each page that either process writes is copied at its first write
(copy-on-write). A worker's main process keeps running while its children
run: it takes the next task, records outcomes, beats. Forked from it, every
task made it pay for a copy of each page it touched next (about 590 page
faults, 1.7 ms of kernel time per task, measured). The fork server is forked
from the main process once, before its first task, and does nothing but fork:
its pages stay as they were, so its forks are cheap, and the main process
forks nothing.

Main process and server speak over a ``SOCK_SEQPACKET`` socket pair, one
message per send:

- ``f`` with two file descriptors (a task process's ends of its pipes, see
  :mod:`.task_pipes`): fork a process that runs with them. The server answers
  ``c<pid> <process token>``, or ``e<error>`` if it could not fork.
- ``p<json>``: a task's id and fields, for the runner's ``prepare`` (import
  the task's code in the server once, for the processes to come).
- ``x<pid> <wait status>``, from the server: a process it forked has ended.
  The server reaps it only once the main process answers ``a<pid>``: until
  then the pid cannot be given to another process, so the main process may
  signal its task processes by pid as safely as its own children.

If the server dies, the kernel hands the processes it forked to the main
process, which asked to be their reaper (``PR_SET_CHILD_SUBREAPER``), with
every status not yet acknowledged: the main process reaps them itself, so no
exit goes unseen, and the next fork starts a new server. A server that does
not answer a fork within :data:`ANSWER_WITHIN` seconds is killed, and the main
process forks the task's process itself. If the main process dies, the server
sees its socket close and leaves; the task processes carry on alone, as they
do when their parent is the main process (see :mod:`.task_pipes`).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import NoReturn

from .processes import process_token

#: Seconds the main process waits for the server to answer a fork. A fork takes
#: well under a millisecond; a server this slow is frozen, or starved.
ANSWER_WITHIN = 5.0

#: The largest ``prepare`` message sent; a task with bigger fields is not
#: prepared in the server (its process imports the code itself).
MAX_PREPARE = 32 * 1024

FORK, FORKED, FAILED, PREPARE, EXITED, ACK = b"f", b"c", b"e", b"p", b"x", b"a"

PR_SET_CHILD_SUBREAPER, PR_GET_CHILD_SUBREAPER = 36, 37

#: The fork server's process title (its first 15 characters are its name in ``ps``).
TITLE = "blueque-fork-server"


class ForkServerGone(Exception):
    """The fork server is dead, or does not answer."""


def available() -> bool:
    """Whether this platform has what a fork server needs (Linux: subreapers, ``waitid``, fd passing)."""
    return sys.platform == "linux" and hasattr(os, "waitid") and hasattr(socket, "send_fds")


def set_subreaper(on: bool) -> bool:
    """Ask the kernel to hand this process its orphaned descendants (or no longer); True if it did."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def is_subreaper() -> bool:
    """Whether this process is already the reaper of its orphaned descendants."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        flag = ctypes.c_int(0)
        return bool(libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0) == 0 and flag.value)
    except (OSError, AttributeError):
        return False


def wait_status(info: os.waitid_result) -> int:
    """The wait status, as ``os.waitpid`` gives it, of a ``waitid`` result."""
    if info.si_code == os.CLD_EXITED:
        return (info.si_status & 0xFF) << 8
    return info.si_status | (0x80 if info.si_code == os.CLD_DUMPED else 0)


class ForkServer:
    """The main process's end: start the server, ask it to fork, hear of exits.

    Every method raises :class:`ForkServerGone` once the server is dead or
    stuck; the caller then lets it go (:meth:`kill`) and forks for itself.
    """

    def __init__(self, pid: int, connection: socket.socket) -> None:
        self.pid = pid
        self._connection = connection
        #: Exits heard while waiting for an answer to a fork, not handed out yet.
        self._exits: list[tuple[int, int]] = []

    @classmethod
    def start(cls, serve: Callable[[socket.socket], NoReturn]) -> ForkServer:
        """Fork the server, which runs ``serve(its end of the socket)`` and never returns."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            try:  # whatever happens, this process never returns into its parent's code
                ours.close()
                serve(theirs)
            finally:
                os._exit(1)
        theirs.close()
        ours.setblocking(False)
        return cls(pid, ours)

    def fileno(self) -> int:
        """Readable when the server has something to say (an exit), or is gone."""
        return self._connection.fileno()

    def fork(self, fds: tuple[int, int]) -> tuple[int, str]:
        """Have the server fork a process that runs with ``fds``: its pid and process token.

        Raises ``OSError`` if the fork itself failed there.
        """
        self._send(FORK, fds)
        deadline = time.monotonic() + ANSWER_WITHIN
        while True:
            for message in self._receive():
                kind, body = message[:1], message[1:].decode()
                if kind == FORKED:
                    pid, token = body.split(" ", 1)
                    return int(pid), token
                if kind == FAILED:
                    raise OSError(f"the fork server could not fork: {body}")
                self._note_exit(message)
            left = deadline - time.monotonic()
            if left <= 0:
                raise ForkServerGone(f"no answer to a fork within {ANSWER_WITHIN:g}s")
            select.select([self._connection], [], [], left)

    def prepare(self, task_id: str, fields: Mapping[str, str]) -> None:
        """Let the server prepare a task's code (see ``ForkingRunner``'s ``prepare``)."""
        message = json.dumps({"id": task_id, "fields": dict(fields)}).encode()
        if len(message) <= MAX_PREPARE:
            self._send(PREPARE + message)

    def exited(self) -> list[tuple[int, int]]:
        """``(pid, wait status)`` of each process of the server's that has ended since last asked.

        Acknowledge each with :meth:`acknowledge` once it is forgotten.
        """
        for message in self._receive():
            self._note_exit(message)
        exits, self._exits = self._exits, []
        return exits

    def acknowledge(self, pid: int) -> None:
        """The main process has forgotten ``pid``: the server may reap it."""
        self._send(ACK + str(pid).encode())

    def kill(self) -> None:
        """Let the server go: it dies at once; the main process reaps it like any child."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self._connection.close()

    def stop(self, wait: float = 1.0) -> None:
        """Close the socket and reap the server: it first reaps what it was told to, then leaves
        (killed if it has not within ``wait`` seconds)."""
        self._connection.close()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                if os.waitpid(self.pid, os.WNOHANG)[0]:
                    return
            except ChildProcessError:  # reaped already
                return
            time.sleep(0.005)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)

    def _note_exit(self, message: bytes) -> None:
        if message[:1] == EXITED:
            pid, status = message[1:].split()
            self._exits.append((int(pid), int(status)))

    def _send(self, message: bytes, fds: tuple[int, ...] = ()) -> None:
        try:
            if fds:
                socket.send_fds(self._connection, [message], list(fds))
            else:
                self._connection.send(message)
        except (BlockingIOError, OSError) as exc:  # its buffer is full (stuck), or it is gone
            raise ForkServerGone(str(exc)) from exc

    def _receive(self) -> Iterator[bytes]:
        while True:
            try:
                message = self._connection.recv(4096)
            except BlockingIOError:
                return
            except OSError as exc:
                raise ForkServerGone(str(exc)) from exc
            if not message:
                raise ForkServerGone("it closed its socket")
            yield message


def serve(
    connection: socket.socket,
    run_child: Callable[[int, int], NoReturn],
    *,
    before_fork: Callable[[], None] | None = None,
    prepare: Callable[[str, dict[str, str]], None] | None = None,
) -> NoReturn:
    """The server's loop, in the server: fork on request, report exits, reap once acknowledged.

    ``run_child(control, report)`` runs in each process forked, with the fds
    it was sent. Leaves when the main process closes its end (it is done, or
    dead). SIGTERM and SIGINT are ignored: a stop is the main process's to
    decide, and a signal to the whole process group must not cut its
    children's exits short.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    signal.set_wakeup_fd(wake_write)
    connection.setblocking(False)
    running: set[int] = set()

    def fork(fds: list[int]) -> int:
        if before_fork is not None:
            before_fork()
        pid = os.fork()
        if pid == 0:
            try:  # whatever happens, this process never returns into the server's loop
                signal.set_wakeup_fd(-1)
                for fd in (wake_read, wake_write):
                    os.close(fd)
                connection.close()
                run_child(fds[0], fds[1])
            finally:
                os._exit(1)
        return pid

    def send(message: bytes) -> None:
        connection.setblocking(True)  # the main process reads when it can; wait for it
        try:
            connection.send(message)
        except OSError:  # the main process is gone
            os._exit(0)
        finally:
            connection.setblocking(False)

    while True:
        select.select([connection.fileno(), wake_read], [], [])
        with contextlib.suppress(BlockingIOError):
            while os.read(wake_read, 512):
                pass
        for pid in list(running):
            try:
                info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                running.discard(pid)
                continue
            if info is not None:
                running.discard(pid)
                send(EXITED + f"{pid} {wait_status(info)}".encode())
        while True:
            try:
                message, fds, _, _ = socket.recv_fds(connection, 4096, 2)
            except BlockingIOError:
                break
            except OSError:
                os._exit(0)
            if not message:  # the main process is done, or gone
                os._exit(0)
            kind = message[:1]
            if kind == FORK:
                try:
                    pid = fork(fds)
                except OSError as exc:
                    send(FAILED + str(exc).encode())
                else:
                    running.add(pid)
                    send(FORKED + f"{pid} {process_token(pid)}".encode())
                finally:
                    for fd in fds:
                        os.close(fd)
            elif kind == PREPARE and prepare is not None:
                request = json.loads(message[1:])
                with contextlib.suppress(Exception):  # the task's process meets the same error and records it
                    prepare(request["id"], request["fields"])
            elif kind == ACK:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(int(message[1:]), 0)
