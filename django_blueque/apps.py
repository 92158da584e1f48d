from django.apps import AppConfig
from django.core import checks
from django.core.signals import setting_changed


class BluequeConfig(AppConfig):
    name = "django_blueque"
    verbose_name = "Blueque"
    # Fixed here, so a project's DEFAULT_AUTO_FIELD cannot make its migration look stale.
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import conf
        from .checks import check_redis_server, check_settings

        setting_changed.connect(conf.clear, dispatch_uid="django_blueque.conf.clear")
        checks.register(check_settings)
        checks.register(check_redis_server)
