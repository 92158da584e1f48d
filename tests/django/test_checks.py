"""Every system check id, one by one, and that ``manage.py check`` runs them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django
import pytest
import redis
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from pytest_django import Settings as SettingsWrapper

from tests.django.conftest import BACKEND
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
REDIS = "redis://127.0.0.1:6379/0"
HANDLER = "tests.django.tasks.shout"
DJANGO_REDIS_CACHE = {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": REDIS}


#: What the Redis server's own configuration risks: it depends on the server the settings name.
SERVER_WARNINGS = ("django_blueque.W002", "django_blueque.W003")


def ids(settings: SettingsWrapper, blueque: Any, tasks: dict[str, Any] | None = None) -> list[str]:
    settings.BLUEQUE = blueque
    settings.TASKS = tasks or {"default": {"BACKEND": BACKEND, "QUEUES": []}}
    return [
        message.id
        for message in run_checks()
        if message.id and message.id.startswith("django_blueque.") and message.id not in SERVER_WARNINGS
    ]


def server_warnings(settings: SettingsWrapper, redis_url: str) -> dict[str, str]:
    settings.BLUEQUE = {"REDIS_URL": redis_url}
    return {m.id: m.msg for m in run_checks() if m.id in SERVER_WARNINGS}


@pytest.fixture
def server(redis_url: str, redis_server: RedisServer | None) -> Iterator[redis.Redis]:
    """The private server, whose configuration the test may change: restored afterwards."""
    if redis_server is None:
        pytest.skip("changes the server's configuration: needs the suite's private redis-server")
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    saved = {name: str(conn.config_get(name)[name]) for name in ("maxmemory", "maxmemory-policy", "appendonly", "save")}
    yield conn
    for name, value in saved.items():
        conn.config_set(name, value)
    conn.close()


def test_a_redis_that_may_evict_keys_is_a_warning(
    settings: SettingsWrapper, redis_url: str, server: redis.Redis
) -> None:
    server.config_set("maxmemory", "100mb")
    server.config_set("maxmemory-policy", "allkeys-lru")
    warned = server_warnings(settings, redis_url)
    assert warned["django_blueque.W002"].startswith(
        "Redis may evict keys when it is full (maxmemory-policy allkeys-lru)"
    )
    server.config_set("maxmemory-policy", "volatile-lru")
    assert "results before their RESULT_TTL" in server_warnings(settings, redis_url)["django_blueque.W002"]
    server.config_set("maxmemory-policy", "noeviction")
    assert "django_blueque.W002" not in server_warnings(settings, redis_url)
    server.config_set("maxmemory", "0")  # no limit: nothing is ever evicted
    server.config_set("maxmemory-policy", "allkeys-lru")
    assert "django_blueque.W002" not in server_warnings(settings, redis_url)


def test_a_redis_without_an_append_only_file_is_a_warning(
    settings: SettingsWrapper, redis_url: str, server: redis.Redis
) -> None:
    server.config_set("appendonly", "no")
    server.config_set("save", "")
    warned = server_warnings(settings, redis_url)
    assert warned["django_blueque.W003"].startswith(
        "Redis keeps no append-only file (appendonly no) and takes no snapshots"
    )
    server.config_set("save", "3600 1")
    assert "only RDB snapshots (3600 1)" in server_warnings(settings, redis_url)["django_blueque.W003"]
    server.config_set("appendonly", "yes")
    assert "django_blueque.W003" not in server_warnings(settings, redis_url)


def test_a_full_redis_that_evicts_nothing_refuses_new_tasks(blueque: Any, server: redis.Redis) -> None:
    from django_blueque import EnqueueError
    from tests.django import tasks

    server.config_set("maxmemory-policy", "noeviction")
    server.config_set("maxmemory", "1")  # below what Redis uses already: every write is refused
    with pytest.raises(EnqueueError, match="command not allowed when used memory") as refused:
        tasks.echo.enqueue(1, 2)
    assert isinstance(refused.value.__cause__, redis.ResponseError)


def test_the_server_checks_say_nothing_when_redis_does_not_answer(settings: SettingsWrapper) -> None:
    settings.BLUEQUE = {"REDIS_URL": "redis://127.0.0.1:1/0", "REDIS_KWARGS": {"socket_connect_timeout": 0.5}}
    assert [m.id for m in run_checks() if m.id in SERVER_WARNINGS] == []


@pytest.mark.parametrize(
    ("blueque", "expected"),
    [
        ("redis://localhost", "E001"),
        ({"REDIS_URL": REDIS, "QUEUS": {}}, "E002"),
        ({"REDIS_URL": REDIS, "REDIS_KWARGS": ["password"]}, "E027"),
        ({"SENTINELS": [("localhost", 26379)], "SENTINEL_SERVICE": "m", "SENTINEL_KWARGS": 1}, "E021"),
        ({"REDIS_URL": REDIS, "CONNECTION": "default"}, "E003"),
        ({"REDIS_URL": "http://localhost:6379"}, "E004"),
        ({"REDIS_URL": 6379}, "E004"),
        ({"CONNECTION": "missing"}, "E005"),
        ({"SENTINELS": [("localhost", 26379)]}, "E006"),
        ({"SENTINELS": ["localhost:26379"], "SENTINEL_SERVICE": "mymaster"}, "E006"),
        ({"REDIS_URL": REDIS, "QUEUES": ["default"]}, "E007"),
        ({"REDIS_URL": REDIS, "QUEUES": {"has space": {}}}, "E022"),
        ({"REDIS_URL": REDIS, "QUEUES": {"default": {"CONCURENCY": 2}}}, "E008"),
        ({"REDIS_URL": REDIS, "QUEUES": {"default": {"CONCURRENCY": 0}}}, "E023"),
        ({"REDIS_URL": REDIS, "QUEUES": {"default": {"CONCURRENCY": True}}}, "E023"),
        ({"REDIS_URL": REDIS, "QUEUES": {"raw": {"HANDLER": 42}}}, "E009"),
        ({"REDIS_URL": REDIS, "LISTENER_TIMEOUT": 0}, "E012"),
        ({"REDIS_URL": REDIS, "LISTENER_TIMEOUT": "60"}, "E012"),
        ({"REDIS_URL": REDIS, "LISTENER_TIMEOUT": 0.5}, "E012"),
        ({"REDIS_URL": REDIS, "QUEUES": {"tab\tbed": {}}}, "E022"),
        ({"REDIS_URL": REDIS, "MAX_RELEASES": 0}, "E016"),
        ({"REDIS_URL": REDIS, "LOST_REDIS": "pause"}, "E017"),
        ({"REDIS_URL": REDIS, "MAX_PARAMETERS": 0}, "E019"),
        ({"REDIS_URL": REDIS, "MAX_PARAMETERS": "1MB"}, "E019"),
        ({"REDIS_URL": REDIS, "MAX_RECOVERIES": -1}, "E013"),
        ({"REDIS_URL": REDIS, "MAX_RECOVERIES": 1.5}, "E013"),
        ({"REDIS_URL": REDIS, "RESULT_TTL": -1}, "E015"),
        ({"REDIS_URL": REDIS, "FAILED_RESULT_TTL": "a week"}, "E026"),
        ({"REDIS_URL": REDIS, "SCHEDULE": ["job"]}, "E025"),
        ({"REDIS_URL": REDIS, "QUEUES": {"raw": {"HANDLER": "no.such.module.handler"}}}, "E024"),
        ({"REDIS_URL": REDIS, "QUEUES": {"raw": {"HANDLER": "tests.django.test_checks.REDIS"}}}, "E024"),
    ],
)
def test_each_settings_problem_has_its_id(settings: SettingsWrapper, blueque: Any, expected: str) -> None:
    assert ids(settings, blueque) == [f"django_blueque.{expected}"]


def test_each_check_id_is_raised_in_one_place_and_documented() -> None:
    """One id per problem: an id given in two places would stand for two problems."""
    raised = Counter(
        found
        for path in (ROOT / "django_blueque").rglob("*.py")
        for found in re.findall(r"django_blueque\.([EWI]\d{3})\b", path.read_text())
        if "migrations" not in path.parts
    )
    assert raised and [check_id for check_id, count in raised.items() if count > 1] == []
    documented = re.findall(r"^\| `django_blueque\.([EWI]\d{3})` \|", (ROOT / "docs" / "settings.md").read_text(), re.M)
    assert sorted(documented) == sorted(raised)
    assert len(documented) == len(set(documented))


def test_good_settings_pass(settings: SettingsWrapper, redis_url: str) -> None:
    settings.CACHES = {**settings.CACHES, "redis": DJANGO_REDIS_CACHE}
    settings.TASKS = {"default": {"BACKEND": BACKEND, "QUEUES": ["default"]}}
    good = [
        {
            "REDIS_URL": redis_url,
            "QUEUES": {"default": {"CONCURRENCY": 4}, "raw": {"HANDLER": HANDLER}},
        },
        {"CONNECTION": "redis"},
        {"SENTINELS": [("127.0.0.1", 26379)], "SENTINEL_SERVICE": "mymaster"},
        {},
    ]
    for blueque in good:
        settings.BLUEQUE = blueque
        assert [m.id for m in run_checks() if m.id and m.id.startswith("django_blueque.E")] == [], blueque


def test_a_backend_queue_missing_from_blueque_queues(settings: SettingsWrapper, redis_url: str) -> None:
    tasks = {"default": {"BACKEND": BACKEND, "QUEUES": ["default", "reports"]}}
    assert ids(settings, {"REDIS_URL": redis_url, "QUEUES": {"default": {}}}, tasks) == ["django_blueque.E010"]


def test_a_backend_queue_with_a_raw_handler(settings: SettingsWrapper, redis_url: str) -> None:
    blueque = {"REDIS_URL": redis_url, "QUEUES": {"default": {}, "raw": {"HANDLER": HANDLER}}}
    tasks = {"default": {"BACKEND": BACKEND, "QUEUES": ["default", "raw"]}}
    assert ids(settings, blueque, tasks) == ["django_blueque.E011"]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"REPLICAS": -1}, ["django_blueque.E028"]),
        ({"REPLICAS": "1"}, ["django_blueque.E028"]),
        ({"REPLICAS": True}, ["django_blueque.E028"]),
        ({"REPLICAS": 1, "REPLICA_TIMEOUT": 0}, ["django_blueque.E029"]),
        ({"REPLICA_TIMEOUT": "1s"}, ["django_blueque.E029"]),
        ({"REPLICAS": 2, "REPLICA_TIMEOUT": 0.5}, []),
        ({"ENQUEUE_ON_COMMIT": True, "DATABASE": "default"}, []),
        ({"ENQUEUE_ON_COMIT": True}, ["django_blueque.E030"]),  # a typo would silently do nothing
    ],
)
def test_the_replica_options_of_a_backend(
    settings: SettingsWrapper, redis_url: str, options: dict[str, Any], expected: list[str]
) -> None:
    tasks = {"default": {"BACKEND": BACKEND, "QUEUES": ["default"], "OPTIONS": options}}
    assert ids(settings, {"REDIS_URL": redis_url}, tasks) == expected


def test_an_unreachable_redis_is_a_warning(settings: SettingsWrapper) -> None:
    blueque = {"REDIS_URL": "redis://127.0.0.1:1/0", "REDIS_KWARGS": {"socket_connect_timeout": 0.5}}
    tasks = {"default": {"BACKEND": BACKEND, "QUEUES": ["default"]}}
    assert ids(settings, blueque, tasks) == ["django_blueque.W001"]


def test_manage_py_check_runs_the_checks(settings: SettingsWrapper, redis_url: str) -> None:
    settings.BLUEQUE = {"REDIS_URL": redis_url, "QUEUES": {"default": {"CONCURRENCY": -1}}}
    with pytest.raises(SystemCheckError, match=r"django_blueque\.E023"):
        call_command("check")
    settings.BLUEQUE = {"REDIS_URL": redis_url, "QUEUES": {"default": {}, "slow": {}}}
    settings.TASKS = {"default": {"BACKEND": BACKEND, "QUEUES": ["default", "elsewhere"]}}
    with pytest.raises(SystemCheckError, match=r"django_blueque\.E010"):
        call_command("check")


def test_bad_settings_refuse_to_build_a_client(settings: SettingsWrapper) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from django_blueque.connection import get_client

    settings.BLUEQUE = {"REDIS_URL": "http://nope"}
    with pytest.raises(ImproperlyConfigured, match=r"django_blueque\.E004"):
        get_client()


@pytest.mark.parametrize("blueque", [None, {}, {"QUEUES": {"default": {}}}])
def test_the_default_redis_in_use_is_said(settings: SettingsWrapper, blueque: Any) -> None:
    if blueque is None:
        del settings.BLUEQUE
    else:
        settings.BLUEQUE = blueque
    settings.TASKS = {"default": {"BACKEND": BACKEND, "QUEUES": ["default"]}}
    messages = [m for m in run_checks() if m.id == "django_blueque.I001"]
    assert len(messages) == 1
    assert messages[0].msg.startswith("BLUEQUE names no Redis: using redis://127.0.0.1:6379/0")
    assert ("one queue, 'default'" in messages[0].msg) == (not blueque)


def _check_without(tmp_path: Any, app: str) -> subprocess.CompletedProcess[str]:
    """``manage.py check`` with the demo's settings, less ``app`` in INSTALLED_APPS."""
    root = Path(__file__).resolve().parents[2]
    (tmp_path / "without_app.py").write_text(
        "from testproject.settings import *  # noqa: F403\n"
        f"INSTALLED_APPS = [app for app in INSTALLED_APPS if app != {app!r}]  # noqa: F405\n"
    )
    return subprocess.run(
        [sys.executable, str(root / "testproject" / "manage.py"), "check"],
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root)]),
            "DJANGO_SETTINGS_MODULE": "without_app",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_backend_without_the_tasks_backport_installed_is_an_error(tmp_path: Any) -> None:
    if django.VERSION >= (6, 0):
        pytest.skip("Django 6 has the Tasks API itself: no backport to install")
    done = _check_without(tmp_path, "django_tasks")
    assert done.returncode == 1
    assert "django_blueque.E018" in done.stderr and "'django_tasks' is not in INSTALLED_APPS" in done.stderr


def test_a_backend_without_the_app_installed_is_an_error(tmp_path: Any) -> None:
    if django.VERSION >= (6, 0):
        # Django 6 registers the backends' checks when django.tasks is first imported; with
        # django_blueque not installed nothing in the demo imports it before checks run.
        pytest.skip("Django 6 runs the backends' checks only once django.tasks is imported")
    done = _check_without(tmp_path, "django_blueque")
    assert done.returncode == 1
    assert "django_blueque.E020" in done.stderr and "'django_blueque' is not in INSTALLED_APPS" in done.stderr
