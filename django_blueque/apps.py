from django.apps import AppConfig
from django.core.signals import setting_changed


class BluequeConfig(AppConfig):
    name = "django_blueque"
    verbose_name = "Blueque"

    def ready(self) -> None:
        from . import conf

        setting_changed.connect(conf.clear, dispatch_uid="django_blueque.conf.clear")
