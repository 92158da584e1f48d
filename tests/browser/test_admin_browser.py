"""The Blueque admin pages in a real browser, served by a real ``runserver``, under a strict CSP.

Chromium (Debian's ``/usr/bin/chromium``) is driven by Playwright. The demo
project runs as real processes: ``manage.py runserver`` serves the admin with
every response under the policy of ``csp.py``, and ``manage.py blueque_run``
runs a worker, a scheduler and a monitor. The browser logs in, finds a failed
task, retries it and sees it complete, and no page may raise a
Content-Security-Policy violation, a console error or an uncaught exception.
It takes screenshots of the main pages: into a temporary folder, or, with
``BLUEQUE_SCREENSHOTS`` set to a folder (``make screenshots`` sets
``docs/images``), there, for ``docs/admin.md``.

Without Chromium or Playwright the test is skipped, except under CI (``CI``
set), where it fails; ``.ci/run`` installs Chromium.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from pytest_django import Settings as SettingsWrapper

from demo import tasks as demo_tasks
from django_blueque.connection import get_client
from django_blueque.protocol import Client
from tests.browser.csp import POLICY

CHROMIUM = Path("/usr/bin/chromium")


#: Why the browser cannot run here, if it cannot.
MISSING: str | None = None
try:
    from playwright.sync_api import ConsoleMessage, Locator, Page, Response, expect, sync_playwright
    from playwright.sync_api import Error as PlaywrightError
except ImportError:
    MISSING = "the playwright package is not installed: pip install -e '.[dev]'"
if MISSING is None and not os.access(CHROMIUM, os.X_OK):
    MISSING = f"no Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does)"
if MISSING is not None and not os.environ.get("CI"):
    pytest.skip(MISSING, allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
MANAGE = ROOT / "testproject" / "manage.py"
WAIT = 20.0  # seconds, for anything that should take one or two
USER, PASSWORD = "admin", "admin"
CREATE_ADMIN = f"""
from django.contrib.auth import get_user_model
get_user_model().objects.create_superuser({USER!r}, "admin@example.com", {PASSWORD!r})
"""
CHROMIUM_ARGS = [
    "--no-sandbox",  # as root
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-sync",
    "--metrics-recording-only",
    "--disable-gpu",
]
# Registered before any script of the page runs, so it sees every violation.
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(
    `${event.effectiveDirective} blocked ${event.blockedURI || "inline"} at ${event.sourceFile}:${event.lineNumber}` +
      (event.sample ? ` (${event.sample})` : "")
  );
}, true);
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


class Demo:
    """The demo project's processes, all with the same environment."""

    def __init__(self, redis_url: str, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "BLUEQUE_REDIS_URL": redis_url,
            "DEMO_DATABASE": str(folder / "db.sqlite3"),
            "DJANGO_SETTINGS_MODULE": "tests.browser.csp_settings",
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def manage(self, *args: str) -> None:
        done = subprocess.run(
            [sys.executable, str(MANAGE), *args], env=self.env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, f"manage.py {args[0]} failed:\n{done.stdout}{done.stderr}"

    def start(self, name: str, *args: str) -> None:
        with open(self.log(name), "wb") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, str(MANAGE), *args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, stopped whole
            )

    def log(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    def logs(self) -> str:
        return "".join(f"\n--- {name} ---\n{self.log(name).read_text(errors='replace')}" for name in self.processes)

    def serving(self) -> bool:
        for name, process in self.processes.items():
            assert process.poll() is None, f"{name} exited with status {process.returncode}:{self.logs()}"
        try:
            with urllib.request.urlopen(f"{self.url}/admin/login/", timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError):
            return False

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


@pytest.fixture
def blueque(redis_url: str, settings: SettingsWrapper) -> Client:
    """The demo project's settings in this process, pointed at the test Redis."""
    settings.BLUEQUE = {**settings.BLUEQUE, "REDIS_URL": redis_url}
    return get_client()


def failed_by_hand(client: Client) -> str:
    """A ``reverse`` task that failed once, though it will succeed when retried: a listener fails it unrun."""
    task_id = demo_tasks.reverse.enqueue("Hello, Blueque").id
    with client.get_listener("default") as listener:
        task = listener.listen(timeout=5)
        assert task is not None and task.id == task_id
        processor = client.get_processor(task)
        processor.start(os.getpid())
        assert processor.fail("stopped by the test before it ran", exception="RuntimeError")
    return task_id


@pytest.fixture
def demo(blueque: Client, redis_url: str, tmp_path: Path) -> Iterator[Demo]:
    """Tasks in every state, then the demo's server, worker, scheduler and monitor on them."""
    if MISSING is not None:
        pytest.fail(MISSING, pytrace=False)  # under CI
    failed_by_hand(blueque)
    for text in ("abc", "Blueque", "level"):
        demo_tasks.reverse.enqueue(text)
    demo_tasks.fail.enqueue("failing on purpose")
    running = Demo(redis_url, tmp_path)
    running.manage("migrate", "--noinput", "--verbosity", "0")
    running.manage("shell", "--command", CREATE_ADMIN)
    running.start("server", "runserver", f"127.0.0.1:{running.port}", "--noreload")
    running.start("workers", "blueque_run", "default", "--concurrency", "1")
    try:
        wait_until(running.serving, "the server")

        def worked() -> bool:
            stats = blueque.queue_stats(["default"])["default"]
            return (stats.pending, stats.complete, stats.failed) == (0, 3, 2)

        wait_until(worked, "the worker to run the pending tasks")
        yield running
    finally:
        running.stop()
    log = running.log("server").read_text(errors="replace")
    assert not re.search(r'" 5\d\d ', log) and "Traceback" not in log, f"the server failed:{running.logs()}"


class Watch:
    """What goes wrong in the page: CSP violations, console errors, uncaught exceptions, a missing policy."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.problems: list[str] = []
        page.add_init_script(WATCH_CSP)
        page.on("console", self.on_console)
        page.on("pageerror", lambda error: self.problems.append(f"uncaught exception: {error}"))
        page.on("response", self.on_response)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.location["url"].endswith("/favicon.ico"):
            return  # the browser asks for an icon on its own; the demo has none
        if message.type == "error":
            self.problems.append(f"console error: {message.text} ({message.location['url']})")

    def on_response(self, response: Response) -> None:
        if response.request.resource_type == "document" and response.headers.get("content-security-policy") != POLICY:
            self.problems.append(f"{response.url} came without the policy")

    def check(self) -> None:
        """No violation on the current page, and no problem on any page so far."""
        violations: list[str] = self.page.evaluate("window.__cspViolations")
        assert violations == [], f"{self.page.url}: Content-Security-Policy violations: {violations}"
        assert self.problems == [], f"{self.page.url}: {self.problems}"


def module(page: Page, heading: str) -> Locator:
    """The admin module (box) under that heading."""
    return page.locator(".module", has=page.locator("h2", has_text=re.compile(f"^{re.escape(heading)}$")))


def screenshot(page: Page, name: str) -> None:
    # Into docs/ only when asked: a test run must not leave the working tree changed.
    folder = Path(os.environ.get("BLUEQUE_SCREENSHOTS") or tempfile.gettempdir()) / (
        "" if os.environ.get("BLUEQUE_SCREENSHOTS") else "blueque-screenshots"
    )
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=folder / name)


def test_the_admin_retries_a_failed_task_under_a_strict_csp(demo: Demo, blueque: Client) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(base_url=demo.url, viewport={"width": 1280, "height": 800})
            context.set_default_timeout(WAIT * 1000)
            expect.set_options(timeout=WAIT * 1000)
            page = context.new_page()
            watch = Watch(page)
            browse(page, watch, blueque)
        except PlaywrightError as exc:
            raise AssertionError(f"{exc}{demo.logs()}") from exc
        finally:
            browser.close()


def browse(page: Page, watch: Watch, blueque: Client) -> None:
    # Log in through the admin's form.
    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login/\?next=/admin/$"))
    watch.check()
    page.fill("#id_username", USER)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page).to_have_url(re.compile(r"/admin/$"))
    watch.check()

    # Queues, then the default queue's failed tasks.
    page.click("a[href='/admin/django_blueque/queue/']")
    expect(page.locator("tr[data-queue='default'] [data-field='failed']")).to_have_text("2")
    watch.check()
    page.click("tr[data-queue='default'] th a")
    expect(page.locator(".blueque-tabs .selected")).to_have_text("pending (0)")
    watch.check()
    page.get_by_role("link", name="failed (2)").click()
    rows = page.locator("#blueque-tasks tbody tr")
    expect(rows).to_have_count(2)
    watch.check()
    screenshot(page, "admin-queue.png")

    # The task a listener failed before running it: retry it.
    row = rows.filter(has_text="stopped by the test before it ran")
    task_id = row.locator("th a").inner_text()
    row.locator("th a").click()
    expect(page.locator("h2", has_text="Status:")).to_have_text("Status: failed")
    watch.check()
    page.get_by_role("button", name="Retry").click()
    expect(page.locator("#content")).to_contain_text(f"{task_id}: failed")
    watch.check()
    page.get_by_role("button", name="Yes, retry").click()
    expect(page.locator(".messagelist .success")).to_have_text("Retry: retried 1.")
    assert page.url.endswith(f"/admin/django_blueque/queue/tasks/{task_id}")
    watch.check()

    # The worker runs it again: reload its page until it is complete.
    deadline = time.monotonic() + WAIT
    status = page.locator("h2", has_text="Status:")
    while status.inner_text() != "Status: complete":
        assert time.monotonic() < deadline, f"task {task_id} still {status.inner_text()!r} after {WAIT:.0f} s"
        page.wait_for_timeout(300)
        page.reload()
        watch.check()
    expect(module(page, "Result")).to_contain_text("euqeulB ,olleH")
    expect(module(page, "Earlier attempts")).to_contain_text("stopped by the test before it ran")
    assert blueque.get_task(task_id).status == "complete"
    watch.check()
    screenshot(page, "admin-task.png")

    # Workers: the worker's listener, the monitor and the scheduler, alive.
    page.get_by_role("link", name="Workers", exact=True).click()
    for heading in ("Listeners", "Monitors", "Schedulers"):
        expect(module(page, heading).locator("td.blueque-alive")).to_have_count(1)
    watch.check()
    screenshot(page, "admin-workers.png")

    # Queues again: refresh.js updates a figure that changes after the page loaded.
    page.get_by_role("link", name="Queues", exact=True).first.click()
    scheduled = page.locator("tr[data-queue='default'] [data-field='scheduled']")
    expect(scheduled).to_have_text("0")
    demo_tasks.reverse.using(run_after=timezone.now() + timedelta(hours=1)).enqueue("later")
    expect(scheduled).to_have_text("1")  # within 5 s
    page.wait_for_timeout(1000)  # and the page stays quiet after it
    watch.check()
    screenshot(page, "admin-queues.png")

    # The watch itself: an inline style is refused and reported.
    page.evaluate("document.head.appendChild(document.createElement('style')).textContent = 'body { color: red; }'")
    page.wait_for_function("window.__cspViolations.length > 0")
    assert "style-src" in page.evaluate("window.__cspViolations[0]")
