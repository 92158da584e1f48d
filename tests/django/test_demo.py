"""The demo project's pages, with a real worker run in this process."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client as HttpClient
from django.urls import reverse

from django_blueque.protocol import Client
from django_blueque.testing import run_pending_tasks

MANAGE = Path(__file__).resolve().parents[2] / "testproject" / "manage.py"

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("demo_blueque")]


def _enqueue(client: HttpClient, kind: str, text: str = "Hello, Blueque") -> str:
    response = client.post(reverse("demo:enqueue", args=[kind]), {"text": text}, follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    assert f"Enqueued {kind} task " in page
    return page.split(f"Enqueued {kind} task ")[1].split(".</p>")[0]


def test_a_task_enqueued_from_a_view_runs_and_reads_successful(client: HttpClient, demo_blueque: Client) -> None:
    task_id = _enqueue(client, "quick")
    assert demo_blueque.get_task(task_id).status == "pending"
    assert run_pending_tasks("default") == 1
    page = client.get(reverse("demo:index")).content.decode()
    row = page.split(f'id="task-{task_id}"')[1].split("</tr>")[0]
    assert "SUCCESSFUL" in row
    assert "euqeulB ,olleH" in row


def test_a_failing_task_shows_its_traceback(client: HttpClient) -> None:
    task_id = _enqueue(client, "fail")
    run_pending_tasks("default")
    row = client.get(reverse("demo:index")).content.decode().split(f'id="task-{task_id}"')[1].split("</tr>")[0]
    assert "FAILED" in row
    assert "ValueError: failing on purpose: Hello, Blueque" in row
    assert reverse("admin:django_blueque_task", args=[task_id]) in row  # to retry it there


def test_the_demo_admin_retries_a_failed_task(client: HttpClient, demo_blueque: Client) -> None:
    from django.contrib.auth.models import User

    task_id = _enqueue(client, "fail")
    run_pending_tasks("default")
    client.force_login(User.objects.create_superuser("admin", "admin@example.com", "admin"))
    page = client.get(reverse("admin:django_blueque_task", args=[task_id])).content.decode()
    assert "failing on purpose" in page and 'value="retry"' in page
    form = {"action": "retry", "ids": [task_id], "confirmed": "yes"}
    client.post(reverse("admin:django_blueque_action"), form)
    assert demo_blueque.get_task(task_id).status == "pending"


def test_a_scheduled_task_waits(client: HttpClient, demo_blueque: Client) -> None:
    task_id = _enqueue(client, "scheduled")
    assert demo_blueque.get_task(task_id).status == "scheduled"
    assert run_pending_tasks("default") == 0
    row = client.get(reverse("demo:index")).content.decode().split(f'id="task-{task_id}"')[1].split("</tr>")[0]
    assert "READY" in row
    assert "scheduled" in row


def test_a_raw_task_runs_through_its_handler(client: HttpClient, demo_blueque: Client) -> None:
    task_id = _enqueue(client, "raw", "abc")
    assert run_pending_tasks("raw") == 1
    assert demo_blueque.get_task(task_id).result == "cba"


def test_the_long_task_goes_to_the_slow_queue(client: HttpClient, demo_blueque: Client) -> None:
    task_id = _enqueue(client, "long")
    assert demo_blueque.get_task(task_id).queue == "slow"


def test_the_demo_refuses_bad_input(client: HttpClient, demo_blueque: Client) -> None:
    response = client.post(reverse("demo:enqueue", args=["quick"]), {"text": "x" * 201}, follow=True)
    assert "at most 200 characters" in response.content.decode()
    response = client.post(reverse("demo:enqueue", args=["bogus"]), follow=True)
    assert "Unknown kind of task" in response.content.decode()
    assert demo_blueque.queue_stats() == {}


def test_enqueue_refuses_get(client: HttpClient) -> None:
    assert client.get(reverse("demo:enqueue", args=["quick"])).status_code == 405


def test_a_separate_worker_process_runs_what_a_view_enqueued(client: HttpClient, demo_blueque: Client) -> None:
    # The worker is a real process (manage.py blueque_worker, forking one child per
    # task), configured only through the environment, as in production.
    quick = _enqueue(client, "quick")
    raw = _enqueue(client, "raw", "abc")
    url = demo_blueque.redis.connection_pool.connection_kwargs
    env = {**os.environ, "BLUEQUE_REDIS_URL": f"redis://{url['host']}:{url['port']}/{url['db']}"}
    worker = subprocess.run(
        [sys.executable, str(MANAGE), "blueque_worker", "--burst"], env=env, capture_output=True, text=True, timeout=60
    )
    assert worker.returncode == 0, worker.stderr
    assert "Ran 2 task(s)." in worker.stdout
    row = client.get(reverse("demo:index")).content.decode().split(f'id="task-{quick}"')[1].split("</tr>")[0]
    assert "SUCCESSFUL" in row
    assert "euqeulB ,olleH" in row
    assert demo_blueque.get_task(raw).result == "cba"


def test_the_page_shows_the_signals_the_monitor_sent(client: HttpClient, demo_blueque: Client) -> None:
    quick = _enqueue(client, "quick")
    failing = _enqueue(client, "fail")
    run_pending_tasks("default")
    call_command("blueque_monitor", "--burst")
    table = client.get(reverse("demo:index")).content.decode().split('id="signals"')[1].split("</table>")[0]
    assert f"<small>{quick}</small>" in table
    assert f"<small>{failing}</small>" in table
    assert "task_completed" in table
    assert "task_failed" in table
    assert "failing on purpose" in table
