"""Settings of the benchmark's Django project (``bench/side_by_side.py``); not for production.

Redis is the benchmark's private server (``$BENCH_REDIS_URL``). The queue ``bench`` runs Django
tasks (``bench_project.tasks``), the queue ``raw`` raw Blueque tasks (``bench_project.handlers``);
both run the same body as every peer (``bench_project.taskbody.record``).
"""

import os
import tempfile
from pathlib import Path

import django

SECRET_KEY = "django-blueque-bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_blueque",
    "bench_project",
]
if django.VERSION < (6, 0):
    INSTALLED_APPS.append("django_tasks")

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "bench_project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("BENCH_DATABASE", str(Path(tempfile.gettempdir()) / "django-blueque-bench.sqlite3")),
    }
}

USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

BLUEQUE = {
    "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "QUEUES": {
        "bench": {"CONCURRENCY": 2},
        "raw": {"CONCURRENCY": 2, "HANDLER": "bench_project.handlers.run"},
    },
}
SILENCED_SYSTEM_CHECKS = ["django_blueque.W003"]

TASKS = {
    "default": {
        "BACKEND": "django_blueque.backends.BluequeBackend",
        "QUEUES": ["bench"],
    }
}
