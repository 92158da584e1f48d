from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from django_blueque.connection import get_client
from django_blueque.protocol import STATUSES

from .work import QUEUE, parameters

MAX_SECONDS = 600


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    client = get_client()
    stats = client.queue_stats([QUEUE])[QUEUE]
    ids = [task_id for status in STATUSES for task_id in client.task_ids(QUEUE, status, count=10)]
    return render(request, "demo/index.html", {"stats": stats, "tasks": client.get_tasks(ids), "queue": QUEUE})


@require_POST
def enqueue(request: HttpRequest) -> HttpResponse:
    text = request.POST.get("text", "").strip()
    try:
        seconds = float(request.POST.get("seconds") or 0)
    except ValueError:
        seconds = -1
    if not text or len(text) > 200 or not 0 <= seconds <= MAX_SECONDS:
        messages.error(request, f"Give a text of 1 to 200 characters and 0 to {MAX_SECONDS} seconds.")
        return redirect("demo:index")
    task_id = get_client().get_queue(QUEUE).enqueue(parameters(text, seconds))
    messages.success(request, f"Enqueued task {task_id}.")
    return redirect("demo:index")
