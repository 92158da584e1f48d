from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Queue",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
            ],
            options={
                "permissions": [
                    ("view_tasks", "Can see queues, tasks and workers"),
                    ("retry_tasks", "Can retry failed tasks and run scheduled tasks now"),
                    ("requeue_tasks", "Can requeue the tasks of dead workers"),
                    ("cancel_tasks", "Can cancel pending and scheduled tasks"),
                    ("delete_tasks", "Can delete finished tasks and forget empty queues"),
                ],
                "managed": False,
                "default_permissions": (),
            },
        ),
    ]
