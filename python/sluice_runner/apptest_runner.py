"""Runs Streamlit pages headlessly with `streamlit.testing.v1.AppTest`.

`sluice test` runs this script once for all the pages it tests (starting
Python and importing Streamlit once is most of the cost). It reads a JSON spec
on stdin::

    {"apps_dir": "/ws/applications", "timeout": 30,
     "pages": [{"app": "main_app", "dir": "/ws/applications/main_app",
                "file": "/ws/applications/main_app/dashboard.py"}]}

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
from typing import Any, TextIO

RESULT_PREFIX = "@sluice "


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
        emit(results, run_page(AppTest, page, float(spec["timeout"])))
    return 0


def run_page(app_test: Any, page: dict[str, str], timeout: float) -> dict[str, Any]:
    """Runs one page in its app's folder and describes the outcome."""
    result: dict[str, Any] = {"file": page["file"], "ok": False}
    os.chdir(page["dir"])
    try:
        at = app_test.from_file(page["file"], default_timeout=timeout)
        at.run()
    except Exception as error:  # a timeout, or a file that cannot be loaded
        result["error"] = f"{type(error).__name__}: {error}"
        return result
    if len(at.exception) > 0:
        first = at.exception[0].proto
        result["error"] = f"{first.type}: {first.message}" if first.type else first.message
        result["traceback"] = "\n".join(first.stack_trace)
        return result
    result["ok"] = True
    return result


def emit(out: TextIO, result: dict[str, Any]) -> None:
    out.write(RESULT_PREFIX + json.dumps(result) + "\n")
    out.flush()


if __name__ == "__main__":
    sys.exit(main())
