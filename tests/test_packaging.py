"""The sdist and the wheel, built from the checkout: what each carries, and the dependencies they declare."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_sdist_and_the_wheel_carry_what_they_must(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("*.whl")
    (sdist,) = tmp_path.glob("*.tar.gz")
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    for path in [
        "django_blueque/py.typed",
        "django_blueque/migrations/0001_initial.py",
        "django_blueque/templates/admin/django_blueque/queues.html",
        "django_blueque/static/django_blueque/refresh.js",
        "django_blueque/static/django_blueque/admin.css",
        "django_blueque/protocol/lua/prelude.lua",
        "django_blueque/protocol/lua/reserve.lua",
        "django_blueque/management/commands/blueque_worker.py",
    ]:
        assert path in in_wheel, path
    assert not [name for name in in_wheel if name.startswith(("tests/", "testproject/", "bench/"))]
    metadata = next(
        zipfile.ZipFile(wheel).read(name).decode() for name in in_wheel if name.endswith(".dist-info/METADATA")
    )
    requires = [line.removeprefix("Requires-Dist: ") for line in metadata.splitlines() if line.startswith("Requires-")]
    assert 'django-tasks>=0.9; python_version < "3.12"' in requires
    assert 'django-tasks>=0.9; extra == "django52"' in requires
    assert {"django>=5.2", "redis>=5.0.1", "django-redis>=5.4", "cronsim>=2.6"} <= set(requires)
    with tarfile.open(sdist) as archive:
        in_sdist = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for path in ["README.md", "CHANGELOG.md", "LICENSE", "docs/admin.md", "docs/images/admin-queues.png"]:
        assert path in in_sdist, path
