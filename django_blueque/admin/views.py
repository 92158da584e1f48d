"""The admin's pages: queues, a queue's tasks, a task, workers; and the actions, behind a confirmation.

Everything shown is read from Redis when the page is asked for; nothing is
kept in the database. Each page costs a fixed number of Redis round trips and
work proportional to what it shows (a page of 50 tasks, a row per queue or
listener), never to the length of a queue. GET never changes Redis: every
action is a POST, confirmed on a second page, CSRF-protected, checked against
its own permission, and recorded in Django's admin log.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import django
from django.contrib import messages
from django.contrib.admin import AdminSite
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from django_blueque import payload, results, schedule
from django_blueque.conf import get_settings
from django_blueque.connection import get_client
from django_blueque.humanize import age
from django_blueque.models import PERMISSIONS, Queue
from django_blueque.protocol import ACTIONS, STATUSES, Beater, Client, Operations, Task, beaters, keys

from .chart import per_minute_svg

PAGE_SIZE = 50
#: The states a queue page shows first, and the order of its tabs.
TABS = ("pending", "scheduled", "reserved", "started", "failed", "complete")
#: The admin's breadcrumbs are an ``ol`` of ``li`` from Django 6.1 (styled only so), a ``div`` before.
BREADCRUMBS_TAG = "ol" if django.VERSION >= (6, 1) else "div"
#: How each action is named on buttons and in messages.
LABELS = {
    "retry": "Retry",
    "requeue": "Requeue",
    "cancel": "Cancel",
    "run_now": "Run now",
    "delete": "Delete",
    "forget_queue": "Forget queue",
}


def clean(text: str) -> str:
    """Text read from Redis, printable: bytes that are not UTF-8 shown as ``\\xff`` escapes.

    Replies are decoded with ``surrogateescape`` (see the protocol's Client),
    and a page cannot be encoded with those surrogates in it.
    """
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def readable(task: Task) -> Task:
    """A task whose id and fields are safe to render (:func:`clean`)."""
    return Task(clean(task.id), {clean(name): clean(value) for name, value in task.fields.items()})


def link(viewname: str, arg: str) -> str | None:
    """The URL of a queue's or task's page; None for a name that is not UTF-8, which no URL can carry."""
    return reverse(viewname, args=[arg]) if clean(arg) == arg else None


def finished_before(text: str) -> float | None:
    """The delete-all form's optional date (``YYYY-MM-DD``), as a timestamp at its start in the current time zone."""
    if not text:
        return None
    try:
        day = datetime.fromisoformat(text)
    except ValueError:
        raise Http404("Not a date") from None
    if timezone.is_naive(day):
        day = timezone.make_aware(day)
    return day.timestamp()


def allowed(request: HttpRequest, action: str) -> bool:
    return bool(request.user.has_perm(f"django_blueque.{PERMISSIONS[action]}"))


def require(request: HttpRequest, action: str) -> None:
    if not allowed(request, action):
        raise PermissionDenied(f"You may not {LABELS.get(action, action).lower()} tasks.")


def when(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, tz=UTC)


def pretty(text: str | None) -> str | None:
    """JSON pretty-printed, anything else as it is."""
    if text is None:
        return None
    try:
        return json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False)
    except ValueError:
        return text


def django_task(task: Task) -> dict[str, Any] | None:
    """The name, arguments and backend of a Django task; None for a raw one."""
    try:
        found = payload.decode(task.parameters)
    except payload.NotADjangoTask:
        return None
    return {
        "name": found.task_path,
        "args": json.dumps(found.args, indent=2, ensure_ascii=False),
        "kwargs": json.dumps(found.kwargs, indent=2, sort_keys=True, ensure_ascii=False),
        "backend": found.backend,
    }


def summary(task: Task) -> str:
    """One line for a task list: its Django task's name, error, result or progress."""
    parts = []
    found = django_task(task)
    if found is not None:
        parts.append(found["name"])
    if task.status == "failed" and task.error:
        parts.append(task.error.splitlines()[0][:200] if task.error.strip() else "")
    elif task.status == "started" and task.progress is not None:
        parts.append(f"{task.progress * 100:.0f}% {task.progress_message or ''}".strip())
    elif task.status == "complete" and task.result:
        parts.append(task.result[:100])
    return " - ".join(part for part in parts if part)


class BluequeAdminViews:
    """The views, bound to an admin site (for its context and its login)."""

    def __init__(self, site: AdminSite) -> None:
        self.site = site

    # -- Shared.

    def context(self, request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
        return {
            **self.site.each_context(request),
            "title": title,
            "opts": Queue._meta,
            "app_label": Queue._meta.app_label,
            "find_url": reverse("admin:django_blueque_find"),
            "breadcrumbs_tag": BREADCRUMBS_TAG,
            **extra,
        }

    @staticmethod
    def client() -> Client:
        return get_client()

    @staticmethod
    def operations(client: Client) -> Operations:
        config = get_settings()
        return client.operations(
            listener_timeout=config.listener_timeout,
            max_recoveries=config.max_recoveries,
            max_releases=config.max_releases,
        )

    @staticmethod
    def queue_names(client: Client) -> list[str]:
        # A name that is not UTF-8 cannot be in a URL: it is listed, cleaned, but not linked.
        return sorted(set(client.queue_names()) | set(get_settings().queues))

    # -- Pages.

    def queues(self, request: HttpRequest) -> HttpResponse:
        require(request, "view")
        client = self.client()
        rows = self.queue_rows(client)
        return render(
            request,
            "admin/django_blueque/queues.html",
            self.context(request, "Blueque queues", rows=rows, counts_url=reverse("admin:django_blueque_counts")),
        )

    def queue_rows(self, client: Client) -> list[dict[str, Any]]:
        names = self.queue_names(client)
        stats = client.queue_stats(names)
        oldest = client.oldest_pending(names)
        listeners = beaters(client.redis, names).listeners
        now = time.time()
        rows = []
        for name in names:
            mine = [listener for listener in listeners if name in listener.queues]
            chart = client.per_minute(name)
            rows.append(
                {
                    "name": clean(name),
                    "stats": stats[name],
                    "counts": stats[name].counts(),
                    "alive": sum(listener.alive is True for listener in mine),
                    "dead": sum(listener.alive is False for listener in mine),
                    "unknown": sum(listener.alive is None for listener in mine),
                    "oldest": age(None if oldest[name] is None else max(now - (oldest[name] or now), 0.0)),
                    "chart": per_minute_svg(chart["complete"], chart["failed"]),
                    "url": link("admin:django_blueque_queue", name),
                }
            )
        return rows

    def counts(self, request: HttpRequest) -> JsonResponse:
        """The queues page's figures, for its refresh script."""
        require(request, "view")
        client = self.client()
        rows = self.queue_rows(client)
        return JsonResponse(
            {
                row["name"]: {
                    **row["counts"],
                    "alive": row["alive"],
                    "dead": row["dead"],
                    "unknown": row["unknown"],
                    "oldest": row["oldest"],
                    "chart": str(row["chart"]),
                }
                for row in rows
            }
        )

    def queue(self, request: HttpRequest, name: str) -> HttpResponse:
        require(request, "view")
        client = self.client()
        if name not in self.queue_names(client):
            raise Http404("No such queue")
        state = request.GET.get("state", "pending")
        if state not in STATUSES:
            state = "pending"
        try:
            page = max(int(request.GET.get("page", "1")), 1)
        except ValueError:
            page = 1
        stats = client.queue_stats([name])[name]
        ids = client.task_ids(name, state, offset=(page - 1) * PAGE_SIZE, count=PAGE_SIZE + 1)
        tasks = [readable(task) for task in client.get_tasks(ids[:PAGE_SIZE])]
        base = reverse("admin:django_blueque_queue", args=[name])
        actions = [
            {"name": action, "label": LABELS[action]}
            for action, (states, _) in ACTIONS.items()
            if state in states and allowed(request, action)
        ]
        empty = not any(stats.counts().values())
        return render(
            request,
            "admin/django_blueque/queue.html",
            self.context(
                request,
                f"Queue {name}",
                queue=name,
                state=state,
                tabs=[
                    {"state": tab, "count": getattr(stats, tab), "url": f"{base}?state={tab}", "current": tab == state}
                    for tab in TABS
                ],
                count=getattr(stats, state),
                listeners=stats.listeners,
                rows=[
                    {
                        "task": task,
                        "summary": summary(task),
                        "created": when(task.created),
                        "updated": when(task.updated),
                        "url": reverse("admin:django_blueque_task", args=[task.id]),
                    }
                    for task in tasks
                ],
                page=page,
                previous_url=f"{base}?state={state}&page={page - 1}" if page > 1 else None,
                next_url=f"{base}?state={state}&page={page + 1}" if len(ids) > PAGE_SIZE else None,
                actions=actions,
                action_url=reverse("admin:django_blueque_action"),
                here=request.get_full_path(),
                can_forget=empty and allowed(request, "forget_queue"),
            ),
        )

    def task(self, request: HttpRequest, task_id: str) -> HttpResponse:
        require(request, "view")
        client = self.client()
        task = client.get_task(task_id)
        if not task.exists:
            raise Http404("No such task")
        listener = self.listener_of(client, task)
        task = readable(task)
        earlier = results.earlier_errors(task)
        shown = {
            name: value
            for name, value in sorted(task.fields.items())
            if name not in ("parameters", "result", "traceback", "errors")
        }
        actions = [
            {"name": action, "label": LABELS[action]}
            for action, (states, _) in ACTIONS.items()
            if task.status in states and allowed(request, action)
        ]
        return render(
            request,
            "admin/django_blueque/task.html",
            self.context(
                request,
                f"Task {task.id}",
                task=task,
                fields=shown,
                parameters=pretty(task.parameters),
                result=pretty(task.result),
                django_task=django_task(task),
                earlier_errors=[
                    {**error, "retry_at": when(error.get("retry_at")), "failed_at": when(error.get("failed_at"))}
                    for error in earlier
                ],
                times=[
                    (label, when(value))
                    for label, value in (
                        ("created", task.created),
                        ("started", task.started_at),
                        ("updated", task.updated),
                        ("due", task.eta),
                    )
                    if value is not None
                ],
                listener=listener,
                listener_age=age(listener.beat_age) if listener else None,
                progress=None if task.progress is None else round(task.progress * 100),
                queue_url=reverse("admin:django_blueque_queue", args=[task.queue])
                if task.queue in self.queue_names(client)
                else None,
                actions=actions,
                action_url=reverse("admin:django_blueque_action"),
                here=request.get_full_path(),
            ),
        )

    @staticmethod
    def listener_of(client: Client, task: Task) -> Beater | None:
        if not task.node or not task.queue or task.status not in ("reserved", "started"):
            return None
        listeners = beaters(client.redis, [task.queue]).listeners
        return next((listener for listener in listeners if listener.id == task.node), None)

    def workers(self, request: HttpRequest) -> HttpResponse:
        require(request, "view")
        client = self.client()
        fleet = beaters(client.redis, self.queue_names(client))
        periodic = []
        entries = schedule.periodic_tasks()
        if entries:
            names = [name for entry in entries for name in (entry.name, f"{entry.name}:task")]
            state = dict(zip(names, client.redis.hmget(keys.periodic(), names), strict=True))
            now = time.time()
            for entry in entries:
                last = state[entry.name]
                upcoming = entry.schedule.next(datetime.fromtimestamp(now, tz=UTC), entry.zone)
                task_id = state[f"{entry.name}:task"]
                periodic.append(
                    {
                        "entry": entry,
                        "schedule": entry.schedule,
                        "last": when(float(last)) if last else None,
                        "next": upcoming,
                        "task_id": task_id if isinstance(task_id, str) else None,
                    }
                )
        return render(
            request,
            "admin/django_blueque/workers.html",
            self.context(
                request,
                "Blueque workers",
                listeners=[self.beater_row(listener) for listener in fleet.listeners],
                monitors=[self.beater_row(monitor) for monitor in fleet.monitors],
                schedulers=[self.beater_row(scheduler) for scheduler in fleet.schedulers],
                periodic=periodic,
            ),
        )

    @staticmethod
    def beater_row(beater: Beater) -> dict[str, Any]:
        return {
            "beater": beater,
            "id": clean(beater.id),
            "host": clean(beater.host or "-"),
            "queues": ", ".join(clean(name) for name in beater.queues),
            "age": age(beater.beat_age),
            "state": beater.state,
            "tasks": [(clean(task_id), link("admin:django_blueque_task", task_id)) for task_id in beater.tasks],
        }

    def find(self, request: HttpRequest) -> HttpResponse:
        require(request, "view")
        task_id = request.GET.get("id", "").strip()
        if task_id and self.client().get_task(task_id).exists:
            return HttpResponseRedirect(reverse("admin:django_blueque_task", args=[task_id]))
        if task_id:
            messages.warning(request, f"No task has the id {task_id!r}.")
        return HttpResponseRedirect(reverse("admin:django_blueque_queue_changelist"))

    # -- Actions.

    def action(self, request: HttpRequest) -> HttpResponse:
        action = request.POST.get("action", "")
        if action not in LABELS:
            raise Http404("No such action")
        require(request, action)
        back = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
            back = reverse("admin:django_blueque_queue_changelist")
        client = self.client()
        operations = self.operations(client)
        if action == "forget_queue":
            return self.forget_queue(request, operations, back)
        ids = [task_id for task_id in request.POST.getlist("ids") if task_id]
        every = request.POST.get("all") == "1"
        queue, state = request.POST.get("queue", ""), request.POST.get("state", "")
        force = request.POST.get("force") == "1"
        before = finished_before(request.POST.get("older_than", "")) if action == "delete" and every else None
        states, _ = ACTIONS[action]
        if every and (queue not in self.queue_names(client) or state not in states):
            raise Http404("No such queue or state for this action")
        if not every and not ids:
            messages.warning(request, "Select some tasks first.")
            return HttpResponseRedirect(back)
        if request.POST.get("confirmed") != "yes":
            tasks = [] if every else [readable(task) for task in client.get_tasks(ids)]
            count = getattr(client.queue_stats([queue])[queue], state) if every else None
            return render(
                request,
                "admin/django_blueque/confirm.html",
                self.context(
                    request,
                    f"{LABELS[action]} tasks?",
                    action=action,
                    label=LABELS[action],
                    every=every,
                    queue=queue,
                    state=state,
                    count=count,
                    tasks=[{"task": task, "applies": task.status in states} for task in tasks],
                    applicable=sum(task.status in states for task in tasks),
                    ids=[clean(task_id) for task_id in ids],
                    force=force,
                    next=back,
                    action_url=reverse("admin:django_blueque_action"),
                ),
            )
        if every:
            outcome = operations.apply_to_state(action, queue, state, force=force, older_than=before)
            what = f"all {state} tasks of queue {queue}"
            if before is not None:
                what += f" finished before {request.POST['older_than']}"
        else:
            outcome = operations.run(action, ids, force=force)
            what = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
        self.log(request, action, queue or "tasks", f"{LABELS[action]} {what}: {outcome}")
        level = messages.SUCCESS if not outcome.refused else messages.WARNING
        messages.add_message(request, level, f"{LABELS[action]}: {outcome}.")
        return HttpResponseRedirect(back)

    def forget_queue(self, request: HttpRequest, operations: Operations, back: str) -> HttpResponse:
        name = request.POST.get("queue", "")
        if name not in self.queue_names(operations.client):
            raise Http404("No such queue")
        if request.POST.get("confirmed") != "yes":
            return render(
                request,
                "admin/django_blueque/confirm.html",
                self.context(
                    request,
                    "Forget queue?",
                    action="forget_queue",
                    label=LABELS["forget_queue"],
                    forget=name,
                    next=back,
                    action_url=reverse("admin:django_blueque_action"),
                ),
            )
        word = operations.forget_queue(name)
        if word == "forgotten":
            self.log(request, "forget_queue", name, f"Forgot queue {name}")
            messages.success(request, f"Forgot queue {name}.")
            return HttpResponseRedirect(reverse("admin:django_blueque_queue_changelist"))
        messages.warning(request, f"Queue {name} was not forgotten: {word}.")
        return HttpResponseRedirect(back)

    @staticmethod
    def log(request: HttpRequest, action: str, object_id: str, message: str) -> None:
        user_id = request.user.pk
        assert user_id is not None, "admin_view lets in logged-in staff only"
        LogEntry.objects.create(
            user_id=user_id,
            content_type=ContentType.objects.get_for_model(Queue, for_concrete_model=False),
            object_id=object_id[:200],
            object_repr=object_id[:200],
            action_flag=CHANGE,
            change_message=message[:5000],
        )

    def urls(self) -> list[Any]:
        from django.urls import path

        view: Callable[..., Any] = self.site.admin_view
        get_only: Sequence[tuple[str, Callable[..., HttpResponse], str]] = (
            ("", self.queues, "django_blueque_queue_changelist"),
            ("counts/", self.counts, "django_blueque_counts"),
            ("workers/", self.workers, "django_blueque_workers"),
            ("find/", self.find, "django_blueque_find"),
            ("queues/<path:name>", self.queue, "django_blueque_queue"),
            ("tasks/<path:task_id>", self.task, "django_blueque_task"),
        )
        patterns = [path(route, view(require_GET(func)), name=name) for route, func, name in get_only]
        patterns.append(path("action/", view(require_POST(self.action)), name="django_blueque_action"))
        return patterns
