from __future__ import annotations

import pytest
from pytest_django import Settings as SettingsWrapper

from django_blueque.connection import get_client
from django_blueque.protocol import Client

BACKEND = "django_blueque.backends.BluequeBackend"


@pytest.fixture
def blueque(redis_url: str, settings: SettingsWrapper) -> Client:
    """The app's client, pointed by settings at the test Redis, with a TASKS backend on it."""
    settings.BLUEQUE = {
        "REDIS_URL": redis_url,
        "QUEUES": {
            "default": {"CONCURRENCY": 2},
            "other": {},
            "raw": {"HANDLER": "tests.django.tasks.shout"},
        },
    }
    settings.TASKS = {"default": {"BACKEND": BACKEND, "QUEUES": ["default", "other"]}}
    return get_client()


@pytest.fixture
def demo_blueque(redis_url: str, settings: SettingsWrapper) -> Client:
    """The demo project's own settings, pointed at the test Redis."""
    settings.BLUEQUE = {**settings.BLUEQUE, "REDIS_URL": redis_url}
    return get_client()
