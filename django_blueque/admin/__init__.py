"""Blueque in the Django admin: queues, tasks and workers, read live from Redis.

Registered on the default admin site as the unmanaged ``Queue`` model, in
django-rq's manner: the model carries only the permissions, and the pages
are views of their own, routed by :meth:`QueueAdmin.get_urls` behind
``admin_site.admin_view`` (staff login). See views.py.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from django_blueque.models import PERMISSIONS, Queue

from .views import BluequeAdminViews


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """The Blueque pages; nothing to add, change or delete as a model."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(f"django_blueque.{PERMISSIONS['view']}"))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[Any]:
        return BluequeAdminViews(self.admin_site).urls()
