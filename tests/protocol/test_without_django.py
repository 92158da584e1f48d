import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["django"] = None  # any "import django" now raises ImportError

    from django_blueque.protocol import Client, forking_runner

    client = Client(sys.argv[1])
    task_id = client.get_queue("q").enqueue("hello")
    forking_runner.run(client, "q", lambda task: task.parameters.upper(), 1, burst=True)
    task = client.get_task(task_id)
    assert (task.status, task.result) == ("complete", "HELLO"), task.fields
    assert not any(name == "django" or name.startswith("django.") for name in sys.modules if sys.modules[name])
    print("ok")
    """
)


def test_protocol_imports_and_works_without_django(redis_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, redis_url], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
