"""The app template's dashboard (what `sluice init` and `sluice new-app`
generate), run through AppTest: sample data always, live rows from the
local database when it is up, and the reason when it is not."""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from .conftest import PYTHON_DIR, free_port

TEMPLATE = (
    PYTHON_DIR.parent
    / "crates/sluice-apps/templates/workspace/templates/app/dashboard.py.j2"
)
VALUES = {
    "class_name": "DemoAppPage",
    "app_title": "Demo App",
    "app_name": "demo_app",
    "project": "tests",
}


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[Path]:
    """The rendered dashboard in an apps folder with the shared components."""
    apps = tmp_path / "applications"
    shutil.copytree(PYTHON_DIR / "sluice_components", apps / "components")
    app = apps / "demo_app"
    app.mkdir()
    # The template only uses plain `{{ name }}` substitutions.
    text = re.sub(r"\{\{ (\w+) \}\}", lambda m: VALUES[m.group(1)], TEMPLATE.read_text())
    page = app / "dashboard.py"
    page.write_text(text)
    sys.path.insert(0, str(apps))
    yield page
    sys.path.remove(str(apps))
    for name in [n for n in sys.modules if n == "components" or n.startswith("components.")]:
        del sys.modules[name]


def run_page(page: Path) -> AppTest:
    at = AppTest.from_file(str(page), default_timeout=30)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_live_rows_when_the_database_is_up(
    dashboard: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLUICE_POSTGRES_URL", postgres_url)
    at = run_page(dashboard)
    assert [m.label for m in at.metric] == ["Revenue this year", "Best month"]
    assert len(at.info) == 0, [i.value for i in at.info]
    live = at.dataframe[0].value
    assert live["database_name"].tolist() == ["postgres"]


def test_the_reason_when_the_database_is_down(
    dashboard: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLUICE_POSTGRES_URL", f"postgresql://app:pw@127.0.0.1:{free_port()}/app")
    at = run_page(dashboard)
    assert len(at.dataframe) == 0
    (info,) = at.info
    assert info.value.startswith(
        "Live data is not available here: cannot connect to the local database at "
        "postgresql://app:***@127.0.0.1:"
    ), info.value
