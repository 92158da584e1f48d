"""The sdist and the wheel, built from the checkout: what each carries, and the dependencies they declare."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_sdist_and_the_wheel_carry_what_they_must(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # setuptools warns of data directories left out of the package list, which it says it
    # will one day stop shipping: the Lua scripts, the templates and the static files.
    assert "would be ignored" not in built.stdout + built.stderr
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


SITE = "https://django-blueque.readthedocs.io/en/latest/"
REPOSITORY = "https://github.com/django-blueque/django-blueque/blob/main/"


def heading_anchor(heading: str) -> str:
    """The anchor MyST gives a heading (myst_heading_anchors), as GitHub does."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_readme_links_work_on_pypi() -> None:
    """PyPI shows README.md without docs/: every link is absolute, to a page of the manual or a repository file."""
    links = re.findall(r"\]\(([^)]+)\)|<(https?://[^>]+)>", (ROOT / "README.md").read_text())
    targets = [inline or bare for inline, bare in links]
    assert len(targets) > 10
    for target in targets:
        assert target.startswith(("https://", "http://")), f"a relative link in README.md: {target}"
        if target.startswith(SITE):
            page, _, anchor = target.removeprefix(SITE).partition("#")
            if not page:
                continue
            source = ROOT / "docs" / page.replace(".html", ".md")
            assert source.is_file(), f"README.md links to {target}, but there is no {source.relative_to(ROOT)}"
            if anchor:
                headings = re.findall(r"^#{1,3} (.+)$", source.read_text(), re.M)
                assert anchor in {heading_anchor(heading) for heading in headings}, target
        elif target.startswith(REPOSITORY):
            assert (ROOT / target.removeprefix(REPOSITORY)).exists(), target
