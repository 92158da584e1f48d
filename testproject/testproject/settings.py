"""Settings of the django-blueque demo project. Not for production: the secret is public."""

import os
from pathlib import Path

import django

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "django-blueque-demo-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_blueque",
    "demo",
]
if django.VERSION < (6, 0):
    INSTALLED_APPS.append("django_tasks")  # the Tasks API backport, for its checks and logging

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "testproject.urls"

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

WSGI_APPLICATION = "testproject.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DEMO_DATABASE", BASE_DIR / "db.sqlite3"),
    }
}

USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

BLUEQUE = {
    "REDIS_URL": os.environ.get("BLUEQUE_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "LISTENER_TIMEOUT": float(os.environ.get("BLUEQUE_LISTENER_TIMEOUT", "60")),
    "MAX_RECOVERIES": int(os.environ.get("BLUEQUE_MAX_RECOVERIES", "3")),
    "LOST_REDIS": os.environ.get("BLUEQUE_LOST_REDIS", "continue"),
    "RESULT_TTL": float(os.environ.get("BLUEQUE_RESULT_TTL", "86400")),
    "FAILED_RESULT_TTL": float(os.environ.get("BLUEQUE_FAILED_RESULT_TTL", "604800")),
    "QUEUES": {
        "default": {"CONCURRENCY": int(os.environ.get("BLUEQUE_DEFAULT_CONCURRENCY", "4"))},
        "slow": {"CONCURRENCY": 2},
        # A raw Blueque queue: producers written for Blueque 1.0.1 can use it.
        "raw": {"CONCURRENCY": 1, "HANDLER": "demo.work.reverse_text"},
    },
}

# The demo's Redis is a development one, without an append-only file; a
# production Redis should have one, and then this check stays on.
SILENCED_SYSTEM_CHECKS = ["django_blueque.W003"]

TASKS = {
    "default": {
        "BACKEND": "django_blueque.backends.BluequeBackend",
        "QUEUES": ["default", "slow"],
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django_blueque": {"handlers": ["console"], "level": "INFO"},
        "demo": {"handlers": ["console"], "level": "INFO"},
    },
}
