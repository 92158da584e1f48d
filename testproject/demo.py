"""Run the django-blueque demo: find or start Redis, migrate, start a worker, serve.

``make demo`` runs this with the project's virtualenv. Environment:
``BLUEQUE_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``) and ``DEMO_PORT``
(default 8000).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
MANAGE = [sys.executable, str(HERE / "manage.py")]
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
ADMIN_USER, ADMIN_PASSWORD = "admin", "admin"

CREATE_ADMIN = f"""
from django.contrib.auth import get_user_model
User = get_user_model()
if not User.objects.filter(username={ADMIN_USER!r}).exists():
    User.objects.create_superuser({ADMIN_USER!r}, "admin@example.com", {ADMIN_PASSWORD!r})
"""


def reachable(url: str) -> bool:
    conn = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(conn.ping())
    except redis.RedisError:
        return False
    finally:
        conn.close()


def start_private_redis() -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit(
            "No Redis answers at the URL above and redis-server is not installed.\n"
            "Install it (Debian/Ubuntu: `sudo apt-get install redis-server`; macOS: `brew install redis`)\n"
            "or point BLUEQUE_REDIS_URL at a running Redis >= 6.2, then run `make demo` again."
        )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    folder = HERE / ".demo-redis"
    folder.mkdir(exist_ok=True)
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not reachable(url):
        if process.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"redis-server did not start (exit status {process.poll()}).")
        time.sleep(0.1)
    return process, url


def stop_on_signal(signum: int, frame: object) -> None:
    # Turn SIGTERM and SIGHUP into the same clean stop as Ctrl-C.
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, stop_on_signal)
    signal.signal(signal.SIGHUP, stop_on_signal)
    url = os.environ.get("BLUEQUE_REDIS_URL", DEFAULT_REDIS_URL)
    children: list[subprocess.Popen[bytes]] = []
    if reachable(url):
        print(f"Using Redis at {url}")
    else:
        print(f"No Redis answers at {url}; starting a private redis-server for the demo.")
        redis_process, url = start_private_redis()
        children.append(redis_process)
        print(f"Private Redis at {url} (stopped when the demo stops)")
    os.environ["BLUEQUE_REDIS_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
    port = os.environ.get("DEMO_PORT", "8000")
    try:
        subprocess.run([*MANAGE, "migrate", "--noinput", "--verbosity", "0"], check=True)
        subprocess.run([*MANAGE, "shell", "--command", CREATE_ADMIN], check=True)
        # A worker, a scheduler and a monitor; --grace: a stopped demo puts its
        # long task back in pending after 5 s.
        children.append(subprocess.Popen([*MANAGE, "blueque_run", "--grace", "5"]))
        print(
            f"\n  Demo:  http://127.0.0.1:{port}/\n"
            f"  Admin: http://127.0.0.1:{port}/admin/  (login {ADMIN_USER} / password {ADMIN_PASSWORD})\n"
            f"  Blueque in the admin: http://127.0.0.1:{port}/admin/django_blueque/queue/\n"
            "  Stop with Ctrl-C.\n",
            flush=True,
        )
        subprocess.run([*MANAGE, "runserver", f"127.0.0.1:{port}", "--noreload"], check=False)
    except KeyboardInterrupt:
        pass
    finally:
        # Newest first, one at a time: the worker finishes before Redis stops.
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()


if __name__ == "__main__":
    main()
