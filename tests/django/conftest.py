from __future__ import annotations

import pytest
from pytest_django import Settings as SettingsWrapper

from django_blueque.connection import get_client
from django_blueque.protocol import Client


@pytest.fixture
def blueque(redis_url: str, settings: SettingsWrapper) -> Client:
    """The app's client, pointed by settings at the test Redis."""
    settings.BLUEQUE = {"REDIS_URL": redis_url}
    return get_client()
