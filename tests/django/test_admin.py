"""The Blueque admin pages, through Django's test client, against the test Redis.

Every URL and action against the permission matrix (anonymous, staff without
permissions, staff with view only, staff with each action's permission,
superuser); GET changes nothing in Redis; values read from Redis render as
text.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator

import pytest
import redis
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.test import Client as WebClient
from django.urls import reverse
from pytest_django import Settings as SettingsWrapper

from django_blueque.protocol import Client, keys

Dump = dict[bytes, bytes | None]


@pytest.fixture
def blueque(demo_blueque: Client) -> Client:
    """The demo project's settings: its URLs (the admin's among them) import its tasks."""
    return demo_blueque


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url)
    yield conn
    conn.close()


def dump(raw: redis.Redis) -> Dump:
    """Everything Redis holds, serialized, to compare before and after."""
    return {key: raw.dump(key) for key in sorted(raw.scan_iter())}


def tasks_in_every_state(blueque: Client) -> dict[str, str]:
    queue = blueque.get_queue("default")
    ids = {"scheduled": queue.schedule("s", eta=2e9)}
    for name in ("reserved", "started", "complete", "failed"):
        queue.enqueue(name)
    listener = blueque.get_listener("default", heartbeat=True, timeout=60)
    listener.beat()
    for name in ("reserved", "started", "complete", "failed"):
        task = listener.listen(timeout=1)
        assert task is not None and task.parameters == name
        ids[name] = task.id
        if name == "reserved":
            continue
        processor = blueque.get_processor(task)
        processor.start(os.getpid())
        if name == "complete":
            processor.complete("ok")
        elif name == "failed":
            processor.fail("no", exception="builtins.ValueError", traceback="Traceback ...")
    ids["pending"] = queue.enqueue("p")
    return ids


Login = Callable[..., WebClient]


@pytest.fixture
def login(db: None) -> Login:
    """A web client logged in as a new user: ``login()`` (superuser), ``login(perms=[...])`` (staff), or anonymous."""

    def make(*, perms: list[str] | None = None, superuser: bool = False, anonymous: bool = False) -> WebClient:
        web = WebClient()
        if anonymous:
            return web
        count = User.objects.count()
        user = User.objects.create_user(f"user{count}", password="pw", is_staff=True, is_superuser=superuser)
        for codename in perms or []:
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label="django_blueque", codename=codename)
            )
        web.force_login(user)
        return web

    return make


def page_urls(ids: dict[str, str]) -> list[str]:
    return [
        reverse("admin:django_blueque_queue_changelist"),
        reverse("admin:django_blueque_counts"),
        reverse("admin:django_blueque_workers"),
        reverse("admin:django_blueque_find") + f"?id={ids['failed']}",
        reverse("admin:django_blueque_queue", args=["default"]),
        *(reverse("admin:django_blueque_queue", args=["default"]) + f"?state={state}" for state in ids),
        *(reverse("admin:django_blueque_task", args=[task_id]) for task_id in ids.values()),
    ]


def test_every_page_by_who_asks_and_get_changes_nothing(blueque: Client, raw: redis.Redis, login: Login) -> None:
    ids = tasks_in_every_state(blueque)
    before = dump(raw)
    expected = {"anonymous": 302, "staff": 403, "viewer": 200, "superuser": 200}
    clients = {
        "anonymous": login(anonymous=True),
        "staff": login(perms=[]),
        "viewer": login(perms=["view_tasks"]),
        "superuser": login(superuser=True),
    }
    for url in page_urls(ids):
        for who, web in clients.items():
            response = web.get(url)
            wanted = expected[who]
            if wanted == 200 and "/find/" in url:
                wanted = 302  # to the task it found
            assert response.status_code == wanted, f"{who} GET {url}: {response.status_code}"
            if who == "anonymous":
                assert response["Location"].startswith(reverse("admin:login"))
    assert dump(raw) == before, "a GET changed Redis"


def test_the_admin_index_lists_blueque_only_for_those_who_may_see_it(blueque: Client, login: Login) -> None:
    queues = reverse("admin:django_blueque_queue_changelist")
    assert queues.encode() in login(perms=["view_tasks"]).get(reverse("admin:index")).content
    assert queues.encode() not in login(perms=[]).get(reverse("admin:index")).content


ACTIONS = {
    # action: (permission, state of the task it applies to, state after)
    "retry": ("retry_tasks", "failed", "pending"),
    "run_now": ("retry_tasks", "scheduled", "pending"),
    "cancel": ("cancel_tasks", "pending", "failed"),
    "delete": ("delete_tasks", "complete", None),
}


@pytest.mark.parametrize("action", list(ACTIONS))
def test_each_action_needs_its_permission_a_confirmation_and_is_logged(
    blueque: Client, raw: redis.Redis, login: Login, action: str
) -> None:
    permission, state, after = ACTIONS[action]
    ids = tasks_in_every_state(blueque)
    url = reverse("admin:django_blueque_action")
    form = {"action": action, "ids": [ids[state]], "next": reverse("admin:django_blueque_queue", args=["default"])}
    before = dump(raw)
    assert login(anonymous=True).post(url, form).status_code == 302
    others = [codename for codename, *_ in ACTIONS.values() if codename != permission]
    assert login(perms=["view_tasks", *others]).post(url, form).status_code == 403
    allowed = login(perms=["view_tasks", permission])
    assert allowed.get(url).status_code == 405  # POST only
    confirm = allowed.post(url, form)
    assert confirm.status_code == 200 and b'name="confirmed" value="yes"' in confirm.content
    assert dump(raw) == before, "the confirmation page changed Redis"
    done = allowed.post(url, {**form, "confirmed": "yes"})
    assert done.status_code == 302 and done["Location"] == form["next"]
    task = blueque.get_task(ids[state])
    assert (task.status if task.exists else None) == after
    entry = LogEntry.objects.get()
    assert entry.change_message.startswith(f"{action.replace('_', ' ').capitalize()} {ids[state]}")
    # A superuser may too; the task has moved on, so this time it is left alone.
    again = login(superuser=True).post(url, {**form, "confirmed": "yes"}, follow=True)
    assert again.status_code == 200 and f"{ids[state]}" not in blueque.task_ids("default", state)
    assert LogEntry.objects.count() == 2


def test_requeue_refuses_a_live_worker_unless_forced(blueque: Client, login: Login) -> None:
    ids = tasks_in_every_state(blueque)
    web = login(perms=["view_tasks", "requeue_tasks"])
    url = reverse("admin:django_blueque_action")
    form = {"action": "requeue", "ids": [ids["started"]], "confirmed": "yes"}
    assert login(perms=["view_tasks", "retry_tasks"]).post(url, form).status_code == 403
    response = web.post(url, form, follow=True)
    assert b"requeued 0, 1 alive" in response.content
    assert blueque.get_task(ids["started"]).status == "started"
    response = web.post(url, {**form, "force": "1"}, follow=True)
    assert b"requeued 1" in response.content
    assert blueque.get_task(ids["started"]).status == "pending"


def test_an_action_on_every_task_of_a_queue_in_a_state(blueque: Client, login: Login) -> None:
    queue = blueque.get_queue("default")
    ids = [queue.schedule(str(i), eta=2e9) for i in range(7)]
    web = login(perms=["view_tasks", "cancel_tasks"])
    form = {"action": "cancel", "all": "1", "queue": "default", "state": "scheduled"}
    confirm = web.post(reverse("admin:django_blueque_action"), form)
    assert b"all <strong>7</strong> scheduled task(s) of queue <strong>default</strong>" in confirm.content
    web.post(reverse("admin:django_blueque_action"), {**form, "confirmed": "yes"})
    assert [task.status for task in blueque.get_tasks(ids)] == ["failed"] * 7
    bad = web.post(reverse("admin:django_blueque_action"), {**form, "state": "complete", "confirmed": "yes"})
    assert bad.status_code == 404


def test_forget_an_empty_queue(blueque: Client, login: Login) -> None:
    task_id = blueque.get_queue("typo").enqueue("x")
    blueque.redis.delete(keys.pending("typo"), keys.task(task_id))
    web = login(perms=["view_tasks", "delete_tasks"])
    page = web.get(reverse("admin:django_blueque_queue", args=["typo"]))
    assert b"Forget this queue" in page.content
    form = {"action": "forget_queue", "queue": "typo"}
    assert b"Forget queue <strong>typo</strong>?" in web.post(reverse("admin:django_blueque_action"), form).content
    assert "typo" in blueque.queue_names()
    web.post(reverse("admin:django_blueque_action"), {**form, "confirmed": "yes"})
    assert "typo" not in blueque.queue_names()
    assert web.get(reverse("admin:django_blueque_queue", args=["typo"])).status_code == 404


HOSTILE = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']


def test_values_read_from_redis_render_as_text(blueque: Client, raw: redis.Redis, login: Login) -> None:
    queue = blueque.get_queue("default")
    task_id = queue.enqueue(HOSTILE[0])
    raw.hset(keys.task(task_id), mapping={"error": HOSTILE[1], HOSTILE[1]: HOSTILE[0], "node": HOSTILE[0]})
    raw.hset(keys.task(task_id), "result", b"\xff\xfe not UTF-8 \xc3")
    web = login(superuser=True)
    for url in (
        reverse("admin:django_blueque_task", args=[task_id]),
        reverse("admin:django_blueque_queue", args=["default"]),
    ):
        response = web.get(url)
        assert response.status_code == 200
        for text in HOSTILE:
            assert text.encode() not in response.content, f"{text} unescaped on {url}"
    page = web.get(reverse("admin:django_blueque_task", args=[task_id])).content
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert b"&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert b"\\xff\\xfe not UTF-8 \\xc3" in page  # shown as escapes


def test_names_that_are_not_utf8_are_listed_not_linked(blueque: Client, raw: redis.Redis, login: Login) -> None:
    raw.zincrby(keys.queues(), 0, b"bad\xff" + HOSTILE[0].encode())
    raw.sadd(keys.listeners("default"), b"host\xfe_12")
    raw.zadd(keys.heartbeats(), {b"host\xfe_12": 1.0})
    web = login(superuser=True)
    for url in (reverse("admin:django_blueque_queue_changelist"), reverse("admin:django_blueque_workers")):
        response = web.get(url)
        assert response.status_code == 200
        assert HOSTILE[0].encode() not in response.content
    assert b"bad\\xff&lt;script&gt;" in web.get(reverse("admin:django_blueque_queue_changelist")).content
    assert b"host\\xfe_12" in web.get(reverse("admin:django_blueque_workers")).content


def test_a_queue_page_shows_50_tasks_a_page_in_the_order_they_will_run(blueque: Client, login: Login) -> None:
    queue = blueque.get_queue("default")
    ids = [queue.enqueue(str(i)) for i in range(120)]
    web = login(perms=["view_tasks"])
    url = reverse("admin:django_blueque_queue", args=["default"])
    first = web.get(url).content.decode()
    assert first.count('name="ids"') == 0  # view only: no selection
    third = web.get(url + "?state=pending&page=3").content.decode()
    shown = [task_id for task_id in ids if f">{task_id}</a>" in third]
    assert shown == ids[100:]
    assert "next &rsaquo;" not in third and "&lsaquo; previous" in third
    assert f">{ids[0]}</a>" in first and f">{ids[50]}</a>" not in first


def test_find_a_task_by_id(blueque: Client, login: Login) -> None:
    task_id = blueque.get_queue("default").enqueue("x")
    web = login(perms=["view_tasks"])
    found = web.get(reverse("admin:django_blueque_find") + f"?id={task_id}")
    assert found["Location"] == reverse("admin:django_blueque_task", args=[task_id])
    missing = web.get(reverse("admin:django_blueque_find") + "?id=nope", follow=True)
    assert b"No task has the id &#x27;nope&#x27;." in missing.content


def test_the_permissions_migration_matches_the_model(db: None) -> None:
    from django.core.management import call_command

    call_command("makemigrations", "django_blueque", "--check", "--dry-run", verbosity=0)  # exits 1 on a change


def test_the_workers_page_shows_who_beats_and_who_is_dead(blueque: Client, raw: redis.Redis, login: Login) -> None:
    from django_blueque.protocol.monitor import Monitor
    from django_blueque.protocol.scheduler import Scheduler

    live = blueque.get_listener("default", heartbeat=True, timeout=60)
    live.beat()
    dead = blueque.get_listener("default", heartbeat=True, timeout=2, listener_id="dead-host-1234_99")
    dead.beat()
    raw.zadd(keys.heartbeats(), {"dead-host-1234_99": 1.0})
    Monitor(blueque, on_complete=print, on_failed=print, monitor_id="monitor_m-1_5").register()
    Scheduler(blueque, ["default"], scheduler_id="scheduler_s-1_6").tick()
    page = login(perms=["view_tasks"]).get(reverse("admin:django_blueque_workers")).content.decode()
    rows = {row.split("</th>")[0].rsplit(">", 1)[-1]: row for row in page.split('<tr>\n      <th scope="row">')[1:]}
    assert 'class="blueque-alive">alive' in rows[live.id]
    assert 'class="blueque-dead">dead' in rows["dead-host-1234_99"]
    assert 'class="blueque-alive">alive' in rows["monitor_m-1_5"]
    assert 'class="blueque-alive">alive' in rows["scheduler_s-1_6"]


def test_the_workers_page_shows_the_periodic_tasks(blueque: Client, login: Login, settings: SettingsWrapper) -> None:
    from django_blueque import schedule
    from django_blueque.protocol.scheduler import Scheduler

    settings.BLUEQUE = {
        **settings.BLUEQUE,
        "SCHEDULE": {"tick": {"QUEUE": "default", "PARAMETERS": "t", "EVERY": 3600}},
    }
    web = login(perms=["view_tasks"])
    row = web.get(reverse("admin:django_blueque_workers")).content.decode().split('<th scope="row">tick</th>')[1]
    assert "never" in row.split("</tr>")[0]
    blueque.redis.hset(keys.periodic(), "tick", 1.0)  # it ran long ago: the latest occurrence is due
    Scheduler(blueque, ["default"], periodic=schedule.periodic_tasks()).tick()
    row = web.get(reverse("admin:django_blueque_workers")).content.decode().split('<th scope="row">tick</th>')[1]
    (task_id,) = blueque.task_ids("default", "pending")
    assert reverse("admin:django_blueque_task", args=[task_id]) in row.split("</tr>")[0]


def test_delete_every_finished_task_before_a_date(blueque: Client, raw: redis.Redis, login: Login) -> None:
    ids = tasks_in_every_state(blueque)
    queue = blueque.get_queue("default")
    newer = queue.enqueue("n")
    raw.hset(keys.task(ids["complete"]), "updated", 1_000_000_000.0)  # 2001
    listener = blueque.get_listener("default")
    while (task := listener.listen(timeout=0.1)) is not None and task.id != newer:
        pass
    assert task is not None
    processor = blueque.get_processor(task)
    processor.start()
    processor.complete("fresh")
    web = login(perms=["view_tasks", "delete_tasks"])
    form = {"action": "delete", "all": "1", "queue": "default", "state": "complete", "confirmed": "yes"}
    confirm = web.post(reverse("admin:django_blueque_action"), {**form, "confirmed": ""})
    assert b'type="date"' in confirm.content
    web.post(reverse("admin:django_blueque_action"), {**form, "older_than": "2020-01-01"})
    assert not blueque.get_task(ids["complete"]).exists and blueque.get_task(newer).exists
    assert web.post(reverse("admin:django_blueque_action"), {**form, "older_than": "soon"}).status_code == 404


def test_the_breadcrumbs_are_marked_up_as_the_admin_s_own(blueque: Client, login: Login) -> None:
    """Django 6.1 styles an ``ol.breadcrumbs`` only, earlier versions a ``div.breadcrumbs``: follow the admin."""
    web = login(superuser=True)
    own = web.get(reverse("admin:auth_user_changelist")).content.decode()
    (tag,) = set(re.findall(r'<(\w+) class="breadcrumbs">', own))
    for url in [reverse("admin:django_blueque_queue_changelist"), reverse("admin:django_blueque_workers")]:
        page = web.get(url).content.decode()
        assert re.findall(r'<(\w+) class="breadcrumbs">', page) == [tag], url
        assert f"</{tag}>" in page.split('class="breadcrumbs">', 1)[1]


def test_the_confirmation_names_the_tasks_left_alone_only_when_there_are_some(blueque: Client, login: Login) -> None:
    ids = tasks_in_every_state(blueque)
    web, url = login(superuser=True), reverse("admin:django_blueque_action")
    only_failed = web.post(url, {"action": "retry", "ids": [ids["failed"]]}).content.decode()
    assert "Retry the <strong>1</strong> task(s) selected?" in only_failed
    assert "left alone" not in only_failed
    mixed = web.post(url, {"action": "retry", "ids": [ids["failed"], ids["pending"]]}).content.decode()
    assert "Retry <strong>1</strong> of the 2 task(s) selected? The others are left alone" in mixed
