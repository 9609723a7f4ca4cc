"""The runner `sluice test` executes: one JSON result line per page, and
nothing else on stdout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import RUNNER, run_spec


def run_runner(tmp_path: Path, pages: dict[str, str]) -> tuple[list[dict], str]:
    app = tmp_path / "apps" / "demo"
    app.mkdir(parents=True)
    (tmp_path / "apps" / "shared.py").write_text("GREETING = 'hello from shared'\n")
    spec_pages = []
    for name, source in pages.items():
        (app / name).write_text(source)
        spec_pages.append({"app": "demo", "dir": str(app), "file": str(app / name)})
    return run_spec({"apps_dir": str(tmp_path / "apps"), "timeout": 30, "pages": spec_pages})


def test_results_per_page(tmp_path: Path) -> None:
    results, stderr = run_runner(
        tmp_path,
        {
            "good.py": "import streamlit as st\nimport shared\nprint('chatty page')\n"
            "st.write(shared.GREETING)\n",
            "bad.py": "import streamlit as st\nst.write('x')\nraise ValueError('no data')\n",
        },
    )
    good, bad = results
    assert good == {"file": str(tmp_path / "apps/demo/good.py"), "ok": True}
    assert bad["ok"] is False
    assert bad["error"] == "ValueError: no data"
    assert 'bad.py", line 3' in bad["traceback"]
    assert "chatty page" in stderr  # page output is kept off the results channel


def test_a_missing_file_is_a_failure_not_a_crash(tmp_path: Path) -> None:
    app = tmp_path / "apps" / "demo"
    app.mkdir(parents=True)
    spec = {
        "apps_dir": str(tmp_path / "apps"),
        "timeout": 30,
        "pages": [{"app": "demo", "dir": str(app), "file": str(app / "missing.py")}],
    }
    done = subprocess.run(
        [sys.executable, str(RUNNER)], input=json.dumps(spec), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.removeprefix("@sluice "))
    assert result["ok"] is False
    assert "missing.py" in result["error"]


def test_apps_get_their_own_helper_modules(tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    specs = []
    for app, value in [("first", 1), ("second", 2)]:
        (apps / app).mkdir(parents=True)
        (apps / app / "helpers.py").write_text(f"VALUE = {value}\n")
        page = apps / app / "dashboard.py"
        page.write_text(f"import helpers\nassert helpers.VALUE == {value}, helpers.VALUE\n")
        specs.append({"app": app, "dir": str(apps / app), "file": str(page)})
    spec = {"apps_dir": str(apps), "timeout": 30, "pages": specs}
    done = subprocess.run(
        [sys.executable, str(RUNNER)], input=json.dumps(spec), capture_output=True, text=True
    )
    results = [json.loads(line.removeprefix("@sluice ")) for line in done.stdout.splitlines()]
    assert [r["ok"] for r in results] == [True, True], results


def test_the_runner_keeps_its_main_module(tmp_path: Path, monkeypatch) -> None:
    # Streamlit runs a page as `__main__`; once the page's modules are
    # forgotten the process must still have its own, or a library imported
    # between pages (Snowpark, whose import calls `inspect.getmodule`) fails.
    monkeypatch.syspath_prepend(str(RUNNER.parent))
    monkeypatch.chdir(tmp_path)
    import apptest_runner
    from streamlit.testing.v1 import AppTest

    app = tmp_path / "demo"
    app.mkdir()
    (app / "dashboard.py").write_text("import streamlit as st\nst.write('hi')\n")
    main = sys.modules["__main__"]
    page = {"app": "demo", "dir": str(app), "file": str(app / "dashboard.py")}
    assert apptest_runner.run_page(AppTest, page, 30) == {"file": page["file"], "ok": True}
    assert sys.modules["__main__"] is main
