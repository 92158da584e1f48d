from pytest_django import Settings as SettingsWrapper

from django_blueque.conf import DEFAULT_REDIS_URL, get_settings
from django_blueque.connection import get_client


def test_settings_follow_override_settings(settings: SettingsWrapper) -> None:
    settings.BLUEQUE = {"REDIS_URL": "redis://127.0.0.1:1/3"}
    assert get_settings().redis_url == "redis://127.0.0.1:1/3"
    assert get_client().redis.connection_pool.connection_kwargs["port"] == 1
    settings.BLUEQUE = {}
    assert get_settings().redis_url == DEFAULT_REDIS_URL


def test_importing_the_app_opens_no_connection(settings: SettingsWrapper) -> None:
    # Port 1 has no server: building the client must not connect.
    settings.BLUEQUE = {"REDIS_URL": "redis://127.0.0.1:1/0"}
    assert get_client().get_queue("q").name == "q"
