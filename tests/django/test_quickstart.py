"""The quick start (docs/quickstart.md), followed as written in a new project.

The page's captioned code blocks become the project's files, as a reader would
paste them; its commands run against a private Redis (the one change: its
address): `startproject`, `startapp`, `migrate`, `blueque_run` and `runserver`
as real processes, the views over HTTP, and the retry through the admin's own
form, logged in as a superuser. A page whose code no longer works fails here.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.redis_server import RedisServer, free_port

PAGE = Path(__file__).resolve().parents[2] / "docs" / "quickstart.md"
DOCUMENTED_REDIS = "redis://127.0.0.1:6379/0"


def captioned_blocks(text: str) -> list[tuple[str, str]]:
    """(caption, code) of each ``{code-block}`` with a ``:caption:``, in order."""
    blocks = re.findall(r"```\{code-block\} python\n:caption: ([^\n]+)\n\n(.*?)\n```", text, re.S)
    assert blocks, "the quick start has no captioned code blocks"
    return blocks


def shell_lines(text: str) -> str:
    return "\n".join(re.findall(r"```sh\n(.*?)\n```", text, re.S))


def write_the_files(project: Path, text: str, redis_url: str) -> None:
    for caption, code in captioned_blocks(text):
        relative, _, how = caption.partition(" ")
        path = project / relative
        assert path.parent.is_dir(), f"{relative}: the quick start's commands made no such folder"
        code = code.replace(DOCUMENTED_REDIS, redis_url) + "\n"
        if how == "(add at the end)":
            path.write_text(path.read_text() + "\n" + code)
        else:
            assert how == "", f"unknown caption {caption!r}"
            path.write_text(code)


class Site:
    """The project's runserver, as a browser with cookies sees it."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=10) as response:
            return str(response.read().decode())

    def json(self, path: str) -> dict[str, Any]:
        return dict(json.loads(self.get(path)))

    def post(self, path: str, form: dict[str, Any]) -> str:
        token = next(cookie.value for cookie in self.cookies if cookie.name == "csrftoken")
        data = urllib.parse.urlencode({**form, "csrfmiddlewaretoken": token}, doseq=True).encode()
        request = urllib.request.Request(self.base + path, data=data, headers={"Referer": self.base + path})
        with self.opener.open(request, timeout=10) as response:
            return str(response.read().decode())


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except (urllib.error.URLError, ConnectionError):
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    (tmp_path / "redis").mkdir()
    with RedisServer(tmp_path / "redis") as server:
        yield server


def test_the_quick_start_runs_as_written(tmp_path: Path, private_redis: RedisServer) -> None:
    text = PAGE.read_text()
    commands = shell_lines(text)
    for command in [
        "pip install django-blueque",
        "django-admin startproject mysite",
        "cd mysite",
        "python manage.py startapp reports",
        "python manage.py migrate",
        "python manage.py createsuperuser",
        "python manage.py blueque_run",
        "python manage.py runserver",
        'curl "http://127.0.0.1:8000/count/?path=/tmp/words.txt"',
        'echo "the quick brown fox" > /tmp/words.txt',
    ]:
        assert command in commands, f"the quick start no longer says {command!r}"

    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "PYTHONPATH"))}
    env |= {"DJANGO_SUPERUSER_PASSWORD": "quick-start", "PYTHONUNBUFFERED": "1"}

    def run(*args: str, cwd: Path) -> None:
        done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{' '.join(args[1:])}:\n{done.stdout}{done.stderr}"

    run(sys.executable, "-m", "django", "startproject", "mysite", cwd=tmp_path)
    project = tmp_path / "mysite"
    run(sys.executable, "manage.py", "startapp", "reports", cwd=project)
    write_the_files(project, text, private_redis.url)
    run(sys.executable, "manage.py", "migrate", cwd=project)
    superuser = ["--noinput", "--username", "admin", "--email", "admin@example.com"]
    run(sys.executable, "manage.py", "createsuperuser", *superuser, cwd=project)

    port = free_port()
    processes = [
        subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=project,
            env=env,
            stdout=open(tmp_path / f"{args[0]}.log", "wb"),  # noqa: SIM115 (closed with the process)
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for args in (["blueque_run"], ["runserver", "--noreload", f"127.0.0.1:{port}"])
    ]
    try:
        site = Site(port)
        wait_for("runserver", lambda: site.get("/admin/login/"))
        words = tmp_path / "words.txt"  # the page's /tmp/words.txt, private to this test
        started = site.json(f"/count/?path={urllib.parse.quote(str(words))}")
        assert started["status"] == "READY"
        task = f"/tasks/{started['id']}/"

        def status(expected: str) -> Callable[[], dict[str, Any] | None]:
            def check() -> dict[str, Any] | None:
                answer = site.json(task)
                return answer if answer["status"] == expected else None

            return check

        failed = wait_for("the task to fail", status("FAILED"))
        assert failed["error"].startswith("FileNotFoundError: [Errno 2] No such file or directory")

        words.write_text("the quick brown fox\n")
        site.post("/admin/login/?next=/admin/", {"username": "admin", "password": "quick-start"})
        index = site.get("/admin/")
        assert "Blueque" in index and "Queues" in index, "the admin shows no Blueque > Queues"
        # What the page tells a reader to click: the 1 under "failed", Retry, Apply, Yes, retry.
        assert 'href="/admin/django_blueque/queue/queues/default?state=failed" data-field="failed">1<' in site.get(
            "/admin/django_blueque/queue/"
        )
        failed_page = site.get("/admin/django_blueque/queue/queues/default?state=failed")
        assert started["id"] in failed_page
        assert '<option value="retry">Retry</option>' in failed_page
        assert "Apply to the selected tasks" in failed_page
        form = {"action": "retry", "ids": [started["id"]], "next": "/admin/django_blueque/queue/"}
        assert 'value="Yes, retry"' in site.post("/admin/django_blueque/queue/action/", form)
        outcome = site.post("/admin/django_blueque/queue/action/", {**form, "confirmed": "yes"})
        assert "Retry: retried 1" in outcome
        done = wait_for("the retried task to succeed", status("SUCCESSFUL"))
        assert done == {"id": started["id"], "status": "SUCCESSFUL", "words": 4}
        worker_log = (tmp_path / "blueque_run.log").read_text()
        assert "task=reports.tasks.count_words queue=default attempt=1" in worker_log
        assert "outcome=failed exception=builtins.FileNotFoundError" in worker_log
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
