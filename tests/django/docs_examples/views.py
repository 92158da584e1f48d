from datetime import timedelta
from typing import Any

from django.http import Http404, HttpRequest, JsonResponse
from django.utils import timezone

from django_blueque import EnqueueError
from django_blueque.compat import TaskResultDoesNotExist, TaskResultStatus, task_backends

from .tasks import send_report


def request_report(request: HttpRequest, user_id: int) -> JsonResponse:
    try:
        result = send_report.enqueue(user_id)
    except EnqueueError:
        return JsonResponse({"error": "Reports are unavailable right now; try again in a minute."}, status=503)
    return JsonResponse({"id": result.id})  # known at once: keep it to look the task up later


def task_status(request: HttpRequest, task_id: str) -> JsonResponse:
    try:
        result = task_backends["default"].get_result(task_id)
    except TaskResultDoesNotExist:
        raise Http404("No such task") from None
    answer: dict[str, Any] = {"task": result.task.module_path, "status": result.status}
    if result.status == TaskResultStatus.SUCCESSFUL:
        answer["value"] = result.return_value
    elif result.status == TaskResultStatus.FAILED:
        answer["errors"] = [error.exception_class_path for error in result.errors]
    return JsonResponse(answer)


def report_later(user_id: int) -> None:
    send_report.using(run_after=timezone.now() + timedelta(hours=1)).enqueue(user_id)
    send_report.using(queue_name="reports").enqueue(user_id)


def report_for_everyone(user_ids: list[int]) -> None:
    task_backends["default"].enqueue_many(send_report, [((user_id,), {}) for user_id in user_ids])
