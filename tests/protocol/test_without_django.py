import ast
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

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


ROOT = Path(__file__).resolve().parents[2]
#: Modules of the protocol that are public as a whole (``__all__`` lists them).
PUBLIC_MODULES = {"defaults", "keys", "forking_runner", "inline_runner"}


def _imports_of_the_protocol(path: Path) -> Iterator[tuple[str, list[str]]]:
    """``(module, names)`` of each import of ``django_blueque.protocol`` in ``path``, made absolute."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            module = f"{base}.{node.module}" if node.level and node.module else (base if node.level else node.module)
            if module and (module == "django_blueque.protocol" or module.startswith("django_blueque.protocol.")):
                yield module, [alias.name for alias in node.names]


def test_the_django_glue_and_the_demo_use_only_the_public_protocol_api() -> None:
    import django_blueque.protocol as protocol

    public = set(protocol.__all__)
    assert all(hasattr(protocol, name) for name in public)
    outside = [p for p in (ROOT / "django_blueque").rglob("*.py") if "protocol" not in p.relative_to(ROOT).parts]
    outside += list((ROOT / "testproject").rglob("*.py"))
    private = []
    for path in outside:
        for module, names in _imports_of_the_protocol(path):
            if module == "django_blueque.protocol":
                private += [f"{path.name}: {name}" for name in names if name not in public]
            elif module.removeprefix("django_blueque.protocol.").split(".")[0] not in PUBLIC_MODULES:
                private.append(f"{path.name}: {module}")
    assert outside and private == []


#: The documented modules of the Django app that a project imports (README.md, docs/).
PUBLIC_APP_MODULES = {"compat", "connection", "exceptions", "progress", "retry", "signals", "testing", "protocol"}


def test_the_demo_is_a_project_as_a_user_writes_it() -> None:
    """The demo imports only the documented modules of django_blueque, as any project would."""
    internal = []
    for path in (ROOT / "testproject").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                parts = node.module.split(".")
                if parts[0] == "django_blueque" and len(parts) > 1 and parts[1] not in PUBLIC_APP_MODULES:
                    internal.append(f"{path.name}: {node.module}")
    assert internal == []
