import time
from typing import Any

from django.core.management.base import BaseCommand

from django_blueque.conf import get_settings
from django_blueque.connection import get_client


class Command(BaseCommand):
    help = "Move the demo's due scheduled tasks to pending, four times a second."

    def handle(self, *args: Any, **options: Any) -> None:
        client = get_client()
        queues = [client.get_queue(name) for name in get_settings().queues]
        try:
            while True:
                for queue in queues:
                    queue.enqueue_due_tasks()
                time.sleep(0.25)
        except KeyboardInterrupt:
            pass
