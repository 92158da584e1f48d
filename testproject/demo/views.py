"""Pages that enqueue tasks from ordinary Django views and show what the backend reports."""

from datetime import timedelta

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from django_blueque.compat import TaskResultDoesNotExist, task_backends
from django_blueque.connection import get_client

from . import receivers, tasks
from .work import QUEUE as RAW_QUEUE

RECENT = 20
KINDS = ("quick", "fail", "scheduled", "long", "raw")


def _remember(request: HttpRequest, task_id: str) -> None:
    request.session["recent_tasks"] = [task_id, *request.session.get("recent_tasks", [])][:RECENT]


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    client = get_client()
    rows = []
    # One round trip for every task hash on the page (for the fields Django's results do not carry).
    for blueque_task in client.get_tasks(request.session.get("recent_tasks", [])):
        if not blueque_task.exists:
            continue
        try:
            result = task_backends["default"].get_result(blueque_task.id)
        except TaskResultDoesNotExist:  # not a Django task: a raw one of the "raw" queue
            rows.append({"id": blueque_task.id, "name": f"raw: {blueque_task.parameters}", "blueque": blueque_task})
            continue
        rows.append({"id": result.id, "name": result.task.name, "result": result, "blueque": blueque_task})
    stats = client.queue_stats()  # every queue Redis knows
    context = {"rows": rows, "stats": stats.values(), "kinds": KINDS, "signals": receivers.recent()}
    return render(request, "demo/index.html", context)


@require_POST
def enqueue(request: HttpRequest, kind: str) -> HttpResponse:
    text = request.POST.get("text", "").strip() or "Hello, Blueque"
    if len(text) > 200:
        messages.error(request, "Give a text of at most 200 characters.")
        return redirect("demo:index")
    if kind == "quick":
        task_id = tasks.reverse.enqueue(text).id
    elif kind == "fail":
        task_id = tasks.fail.enqueue(f"failing on purpose: {text}").id
    elif kind == "scheduled":
        task_id = tasks.reverse.using(run_after=timezone.now() + timedelta(minutes=1)).enqueue(text).id
    elif kind == "long":
        task_id = tasks.long_report.enqueue(steps=60, seconds_per_step=2.0).id
    elif kind == "raw":
        task_id = get_client().get_queue(RAW_QUEUE).enqueue(text)
    else:
        messages.error(request, f"Unknown kind of task {kind!r}.")
        return redirect("demo:index")
    _remember(request, task_id)
    messages.success(request, f"Enqueued {kind} task {task_id}.")
    return redirect("demo:index")
