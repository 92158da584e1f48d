"""The examples of docs/tasks.md (tests/django/docs_examples/), run against the test Redis.

The page includes their code, so what a reader copies is what runs here.
"""

from __future__ import annotations

import json

import pytest
from django.http import Http404
from django.test import RequestFactory
from pytest_django import Settings as SettingsWrapper

from django_blueque.connection import get_client
from django_blueque.protocol import Client
from django_blueque.testing import run_pending_tasks
from tests.django.conftest import BACKEND
from tests.django.docs_examples import views, work
from tests.django.docs_examples.tasks import transcode

requests = RequestFactory()


@pytest.fixture
def blueque(redis_url: str, settings: SettingsWrapper) -> Client:
    settings.BLUEQUE = {
        "REDIS_URL": redis_url,
        "QUEUES": {
            "default": {"CONCURRENCY": 2},
            "reports": {},
            "video": {"HANDLER": "tests.django.docs_examples.work.transcode"},
        },
    }
    settings.TASKS = {"default": {"BACKEND": BACKEND}}
    return get_client()


def status(task_id: str) -> dict[str, object]:
    return dict(json.loads(views.task_status(requests.get("/"), task_id).content))


def test_a_report_requested_from_a_view_runs_and_its_status_reads_any_id(blueque: Client) -> None:
    answer = json.loads(views.request_report(requests.post("/"), 7).content)
    task_id = answer["id"]
    assert status(task_id) == {"task": "tests.django.docs_examples.tasks.send_report", "status": "READY"}
    assert run_pending_tasks() == 1
    assert status(task_id) == {
        "task": "tests.django.docs_examples.tasks.send_report",
        "status": "SUCCESSFUL",
        "value": {"user": 7, "pages": 12},
    }
    with pytest.raises(Http404):
        views.task_status(requests.get("/"), "no-such-task")


def test_a_view_answers_503_when_redis_is_down(blueque: Client, settings: SettingsWrapper) -> None:
    settings.BLUEQUE = {**settings.BLUEQUE, "REDIS_URL": "redis://127.0.0.1:1/0"}
    response = views.request_report(requests.post("/"), 7)
    assert response.status_code == 503
    assert "unavailable" in json.loads(response.content)["error"]


def test_later_and_elsewhere(blueque: Client) -> None:
    views.report_later(7)
    stats = blueque.queue_stats()
    assert (stats["default"].scheduled, stats["reports"].pending) == (1, 1)
    assert run_pending_tasks("default") == 0  # an hour early
    assert run_pending_tasks("reports") == 1


def test_many_at_once(blueque: Client) -> None:
    views.report_for_everyone([1, 2, 3])
    assert blueque.queue_stats()["default"].pending == 3
    assert run_pending_tasks() == 3


def test_progress_is_reported_as_the_task_runs(blueque: Client) -> None:
    result = transcode.enqueue(5, chunks=4)
    assert run_pending_tasks() == 1
    task = blueque.get_task(result.id)
    assert (task.progress, task.progress_message) == (1.0, "chunk 4 of 4")
    assert json.loads(task.result or "") == "video 5: 4 chunks"


def test_a_raw_queue_runs_what_any_blueque_client_enqueues(blueque: Client, redis_url: str) -> None:
    task_id = work.enqueue_video(redis_url, "https://example.com/videos/cat")
    assert run_pending_tasks("video") == 1
    assert json.loads(blueque.get_task(task_id).result or "") == {"output": "cat.mp4"}


def test_report(blueque: Client) -> None:  # the example of the page's "Testing" section
    views.request_report(requests.post("/"), user_id=7)
    assert run_pending_tasks() == 1
