"""The runner `sluice test` executes: one JSON result line per page, and
nothing else on stdout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

RUNNER = Path(__file__).resolve().parent.parent / "sluice_runner" / "apptest_runner.py"


def run_runner(tmp_path: Path, pages: dict[str, str]) -> tuple[list[dict], str]:
    app = tmp_path / "apps" / "demo"
    app.mkdir(parents=True)
    (tmp_path / "apps" / "shared.py").write_text("GREETING = 'hello from shared'\n")
    spec_pages = []
    for name, source in pages.items():
        (app / name).write_text(source)
        spec_pages.append({"app": "demo", "dir": str(app), "file": str(app / name)})
    spec = {"apps_dir": str(tmp_path / "apps"), "timeout": 30, "pages": spec_pages}
    done = subprocess.run(
        [sys.executable, str(RUNNER)],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert all(line.startswith("@sluice ") for line in lines), done.stdout
    return [json.loads(line.removeprefix("@sluice ")) for line in lines], done.stderr


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
