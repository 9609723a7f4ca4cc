"""Runs Streamlit pages headlessly with `streamlit.testing.v1.AppTest`.

`sluice test` runs this script once for all the pages it tests (starting
Python and importing Streamlit once is most of the cost). It reads a JSON spec
on stdin::

    {"apps_dir": "/ws/applications", "timeout": 30,
     "pages": [{"app": "main_app", "dir": "/ws/applications/main_app",
                "file": "/ws/applications/main_app/dashboard.py",
                "snowpark": false}]}

A page with `"snowpark": true` runs with its app's local Snowpark session
(`local_snowpark.py`: Snowpark's local testing mode, the app's
`tests/data/*.csv` as tables) active and without `SLUICE_POSTGRES_URL`.

and prints one result per page on stdout, as a JSON line prefixed with
`@sluice `::

    @sluice {"file": ..., "ok": false, "error": "ZeroDivisionError: division by zero",
             "traceback": "File ..., line 4, in <module> ..."}

Everything else the pages or Streamlit print goes to stderr, so it can never
be mistaken for a result. Exit status 3 means Streamlit cannot be imported.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any, TextIO

# The sibling module, found even under `python -I` (no script folder on
# sys.path); appended, so it never shadows a page's own modules.
sys.path.append(os.path.dirname(os.path.abspath(__file__)))
import local_snowpark  # noqa: E402

RESULT_PREFIX = "@sluice "
POSTGRES_URL_VARIABLE = "SLUICE_POSTGRES_URL"


def main() -> int:
    # Keep the real stdout for results; send all other output to stderr.
    results = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    spec = json.load(sys.stdin)
    sys.path.insert(0, spec["apps_dir"])
    try:
        from streamlit.testing.v1 import AppTest
    except ImportError as error:
        emit(results, {"fatal": f"cannot import streamlit: {error}"})
        return 3
    for page in spec["pages"]:
        emit(results, run_page(AppTest, page, spec["timeout"]))
    return 0


# Extra seconds for AppTest's own timeout to fire before ours does.
GRACE_SECONDS = 2


def run_page(app_test: Any, page: dict[str, str], timeout: float) -> dict[str, Any]:
    """Runs one page as `streamlit run` would: from its app's folder, with
    that folder on `sys.path`. Modules the app's folder provides are
    forgotten afterwards, so two apps' same-named helpers never mix."""
    result: dict[str, Any] = {"file": page["file"], "ok": False}
    runner_main = sys.modules["__main__"]
    os.chdir(page["dir"])
    postgres_url = os.environ.get(POSTGRES_URL_VARIABLE)
    if page.get("snowpark"):
        try:
            local_snowpark.session_for(page["dir"])
        except Exception as error:  # Snowpark missing, or a fixture that does not load
            result["error"] = f"{type(error).__name__}: {error}"
            if isinstance(error, ImportError):
                result["error"] += " (the app runs with Snowpark locally: run `sluice setup`)"
            return result
        os.environ.pop(POSTGRES_URL_VARIABLE, None)
    sys.path.insert(0, page["dir"])
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            at = app_test.from_file(page["file"], default_timeout=timeout)
            at.run()
            outcome["at"] = at
        except Exception as error:  # AppTest's timeout, or a file that cannot be loaded
            outcome["error"] = f"{type(error).__name__}: {error}"

    # AppTest can only stop a script at its next Streamlit call; a page stuck
    # in `time.sleep` or a socket read would hold `run()` forever. Waiting on
    # a daemon thread bounds every page (the process exits with os._exit).
    worker = threading.Thread(target=run, name=f"page {page['file']}", daemon=True)
    worker.start()
    worker.join(timeout + GRACE_SECONDS)
    sys.path.remove(page["dir"])
    forget_modules_under(page["dir"])
    # Streamlit ran the page as `__main__`, and forgetting the page's modules
    # dropped it; libraries imported later (Snowpark, through `inspect`) need one.
    sys.modules["__main__"] = runner_main
    if postgres_url is not None:
        os.environ[POSTGRES_URL_VARIABLE] = postgres_url
    if worker.is_alive():
        result["error"] = f"TimeoutError: the page was still running after {timeout}s"
        return result
    if "error" in outcome:
        result["error"] = outcome["error"]
        return result
    at = outcome["at"]
    if len(at.exception) > 0:
        first = at.exception[0].proto
        result["error"] = f"{first.type}: {first.message}" if first.type else first.message
        result["traceback"] = "\n".join(first.stack_trace)
        return result
    result["ok"] = True
    return result


def forget_modules_under(folder: str) -> None:
    prefix = os.path.join(os.path.realpath(folder), "")
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and os.path.realpath(path).startswith(prefix):
            del sys.modules[name]


def emit(out: TextIO, result: dict[str, Any]) -> None:
    out.write(RESULT_PREFIX + json.dumps(result) + "\n")
    out.flush()


if __name__ == "__main__":
    status = main()
    sys.stderr.flush()
    # A page that timed out is still running in its script thread; exiting
    # normally would wait for it (forever, for a page that never ends).
    os._exit(status)
