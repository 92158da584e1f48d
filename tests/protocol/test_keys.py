"""The key schema is the wire protocol: these literals must never drift from Blueque 1.0.1."""

from django_blueque.protocol import keys


def test_keys_are_those_of_blueque_1_0_1() -> None:
    assert keys.queues() == "blueque_queues"
    assert keys.pending("some.queue") == "blueque_pending_tasks_some.queue"
    assert keys.scheduled("some.queue") == "blueque_scheduled_tasks_some.queue"
    assert keys.reserved("some.queue", "host.example_42") == "blueque_reserved_tasks_some.queue_host.example_42"
    assert keys.started("some.queue") == "blueque_started_tasks_some.queue"
    assert keys.complete("some.queue") == "blueque_complete_tasks_some.queue"
    assert keys.failed("some.queue") == "blueque_failed_tasks_some.queue"
    assert keys.listeners("some.queue") == "blueque_listeners_some.queue"
    assert keys.task("1234") == "blueque_task_1234"


def test_extension_channel() -> None:
    assert keys.channel("some.queue") == "blueque_channel_some.queue"


def test_started_member_round_trip() -> None:
    member = keys.started_member("host_with_underscores_42", 4242, "abcd-ef")
    assert member == "host_with_underscores_42 4242 abcd-ef"
    assert keys.parse_started_member(member) == ("host_with_underscores_42", "4242", "abcd-ef")


def test_extension_keys() -> None:
    assert keys.heartbeats() == "blueque_heartbeats"
    assert keys.task_heartbeats() == "blueque_task_heartbeats"
    assert keys.periodic() == "blueque_periodic"
    assert keys.reported("q", "complete") == "blueque_reported_complete_q"
    assert keys.per_minute("q", "failed") == "blueque_per_minute_failed_q"
    assert keys.monitors() == "blueque_monitors"
    assert keys.schedulers() == "blueque_schedulers"
    assert keys.monitoring("monitor_h_1") == "blueque_monitoring_monitor_h_1"


def test_ids_made_by_identity_parse_back() -> None:
    import os

    from django_blueque.protocol.identity import (
        MONITOR,
        SCHEDULER,
        beating_listener_id,
        hostname,
        parse_role_id,
        role_id,
    )

    for role in (MONITOR, SCHEDULER):
        made = role_id(role, pid=42)
        parsed = parse_role_id(role, made)
        assert made.startswith(f"{role}_{hostname()}-") and parsed is not None and parsed[1] == 42
        assert role_id(role) != role_id(role)  # a random token each time
    listener = keys.parse_listener_id(beating_listener_id())
    assert listener is not None and listener[0].startswith(f"{hostname()}-") and listener[1] == os.getpid()
    assert beating_listener_id("node-1", 7) == "node-1_7"
