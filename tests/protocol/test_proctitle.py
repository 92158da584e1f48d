"""Process titles: what ``ps`` shows for a worker's processes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from django_blueque.protocol import proctitle
from django_blueque.protocol.proctitle import set_title


def comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().rstrip("\n")


@pytest.fixture
def short_names_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Titles as without ``setproctitle``: the process's 15-character name."""
    monkeypatch.setattr(proctitle, "_setproctitle", None)
    original = comm(os.getpid())
    yield
    Path("/proc/self/comm").write_text(original)


@pytest.mark.usefixtures("short_names_only")
def test_a_forked_child_names_itself_not_its_parent() -> None:
    set_title("blueque-worker: listening on default")
    reads, writes = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a new title for itself, then say what its parent is called
        try:
            set_title("blueque-task: default 1234")
            os.write(writes, f"{comm(os.getpid())}\n{comm(os.getppid())}".encode())
        finally:
            os._exit(0)
    os.close(writes)
    child_name, parent_name = os.read(reads, 200).decode().split("\n")
    os.waitpid(pid, 0)
    os.close(reads)
    assert child_name == "blueque-task: d"
    assert parent_name == "blueque-worker:"
    assert comm(os.getpid()) == "blueque-worker:"


@pytest.mark.usefixtures("short_names_only")
def test_a_shorter_title_replaces_a_longer_one_whole() -> None:
    set_title("blueque-worker: listening")
    set_title("short")
    assert comm(os.getpid()) == "short"
