from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "demo"

    def ready(self) -> None:
        from . import receivers  # noqa: F401 - connects the signal receivers
