"""`sluice run`: `streamlit run` of an app's `dashboard.py`, with the app's
local Snowpark session (`local_snowpark.py`) made first when
`SLUICE_LOCAL_SNOWPARK=1`, so pages find it with `get_active_session()`.

Run from the app's folder as `python streamlit_launcher.py dashboard.py [ARGS]`.
"""

from __future__ import annotations

import os
import sys

LOCAL_SNOWPARK_VARIABLE = "SLUICE_LOCAL_SNOWPARK"


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    if os.environ.get(LOCAL_SNOWPARK_VARIABLE) == "1":
        sys.path.append(here)  # the sibling module, even under `python -I`
        import local_snowpark

        try:
            local_snowpark.session_for(os.getcwd())
        except Exception as error:  # Snowpark missing, or a fixture that does not load
            hint = " (run `sluice setup`)" if isinstance(error, ImportError) else ""
            print(f"sluice: cannot make the local Snowpark session: {error}{hint}", file=sys.stderr)
            return 1
        print(
            "sluice: pages get a local Snowpark session (local testing) with the fixture "
            f"tables of {local_snowpark.DATA_DIR}/: {', '.join(local_snowpark.loaded_tables()) or 'none'}",
            flush=True,
        )
    # The launcher's own folder is no place for the app's imports.
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    from streamlit.web import cli

    sys.argv = ["streamlit", "run", *sys.argv[1:]]
    return cli.main(prog_name="streamlit")


if __name__ == "__main__":
    sys.exit(main())
