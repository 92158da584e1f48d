import json

import pytest
from django.core.management import call_command
from django.test import Client as HttpClient
from django.urls import reverse

from django_blueque.protocol import Client


@pytest.mark.django_db
def test_a_task_enqueued_from_the_demo_page_completes(blueque: Client, client: HttpClient) -> None:
    response = client.post(reverse("demo:enqueue"), {"text": "Hello, Blueque", "seconds": "0"}, follow=True)
    assert response.status_code == 200
    [task_id] = blueque.task_ids("demo", "pending")
    assert f"Enqueued task {task_id}" in response.content.decode()
    assert json.loads(blueque.get_task(task_id).parameters or "") == {"text": "Hello, Blueque", "seconds": 0.0}

    call_command("demo_worker", "--burst")

    task = blueque.get_task(task_id)
    assert (task.status, task.result) == ("complete", "euqeulB ,olleH")
    page = client.get(reverse("demo:index")).content.decode()
    assert f'id="task-{task_id}"' in page
    assert "euqeulB ,olleH" in page
    assert "complete 1" in page


@pytest.mark.django_db
@pytest.mark.parametrize("data", [{"text": ""}, {"text": "x", "seconds": "-1"}, {"text": "x", "seconds": "soon"}])
def test_the_demo_refuses_bad_input(blueque: Client, client: HttpClient, data: dict[str, str]) -> None:
    response = client.post(reverse("demo:enqueue"), data, follow=True)
    assert "Give a text of 1 to 200 characters" in response.content.decode()
    assert blueque.queue_stats(["demo"])["demo"].pending == 0


def test_the_demo_page_refuses_get_on_enqueue(blueque: Client, client: HttpClient) -> None:
    assert client.get(reverse("demo:enqueue")).status_code == 405
