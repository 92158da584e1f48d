"""No tables: Blueque keeps its tasks in Redis. One unmanaged model carries the admin's permissions."""

from django.db import models

#: The admin's permissions, by the action each allows (``app_label.codename``).
PERMISSIONS = {
    "view": "view_tasks",
    "retry": "retry_tasks",
    "run_now": "retry_tasks",
    "requeue": "requeue_tasks",
    "cancel": "cancel_tasks",
    "delete": "delete_tasks",
    "forget_queue": "delete_tasks",
}


class Queue(models.Model):
    """The admin's entry for Blueque: its pages, and what the permissions below allow there.

    Unmanaged and never queried: the pages read Redis.
    """

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_tasks", "Can see queues, tasks and workers"),
            ("retry_tasks", "Can retry failed tasks and run scheduled tasks now"),
            ("requeue_tasks", "Can requeue the tasks of dead workers"),
            ("cancel_tasks", "Can cancel pending and scheduled tasks"),
            ("delete_tasks", "Can delete finished tasks and forget empty queues"),
        ]

    def __str__(self) -> str:
        return "Blueque queues"
