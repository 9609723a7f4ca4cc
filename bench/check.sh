#!/usr/bin/env bash
# Benchmark: `sluice check` against `ruff check --select E9 --no-cache` on the
# same synthetic workspace (500 apps, 5,000 Python pages of a few hundred
# lines with SQL strings). Both parse every Python file with a Rust parser;
# ruff's E9 rules only report syntax errors, so its time is close to "read +
# parse everything", the floor for a checker that parses for real.
#
# Usage: bash bench/check.sh [APPS] [PAGES_PER_APP] [RUNS]
# Prints a table with the median of RUNS runs of each and the ratio.
# Ruff is installed from PyPI into a throwaway virtualenv in the bench's own
# temporary directory (never into the project's .venv).
set -euo pipefail

APPS=${1:-500}
PAGES=${2:-10}
RUNS=${3:-5}
REPO=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d /tmp/sluice-bench-check.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
WS="$TMP/workspace"

echo "building target/release/sluice ..." >&2
(cd "$REPO" && cargo build --release -q -p sluice)
SLUICE="$REPO/target/release/sluice"

echo "installing ruff into $TMP/venv ..." >&2
python3 -m venv "$TMP/venv"
"$TMP/venv/bin/pip" install -q --disable-pip-version-check ruff
RUFF="$TMP/venv/bin/ruff"

echo "generating $APPS apps x $PAGES pages in $WS ..." >&2
python3 - "$WS" "$APPS" "$PAGES" "$REPO/crates/sluice-rules/default-rules.yml" <<'PY'
import os, sys, random, shutil

ws, apps, pages, rules = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rng = random.Random(42)
os.makedirs(f"{ws}/compliance")
shutil.copy(rules, f"{ws}/compliance/rules.yml")
with open(f"{ws}/sluice.yml", "w") as f:
    f.write("project: bench\napps_dir: applications\n")
comp = f"{ws}/applications/components"
os.makedirs(comp)
open(f"{comp}/__init__.py", "w").close()
with open(f"{comp}/base_page.py", "w") as f:
    f.write('''import streamlit as st


class BasePage:
    def __init__(self, title: str = "") -> None:
        self.title = title

    def set_page_layout(self) -> None:
        st.set_page_config(page_title=self.title, layout="wide")

    def setup_ui(self) -> None:
        st.title(self.title)

    def run(self) -> None:
        self.set_page_layout()
        self.setup_ui()

    def query(self, sql: str):
        raise NotImplementedError
''')

TABLES = ["sales", "orders", "customers", "inventory", "shipments", "returns", "payments"]
COLS = ["region", "amount", "quantity", "customer_id", "order_date", "status", "channel", "sku"]


def sql_query(i):
    t = rng.choice(TABLES)
    cols = ", ".join(rng.sample(COLS, 3))
    kind = i % 4
    if kind == 0:
        return f'"SELECT {cols} FROM {t} WHERE amount > {i} ORDER BY 1"'
    if kind == 1:
        return ('"""\n            WITH recent AS (\n'
                f'                SELECT {cols} FROM {t} WHERE order_date >= DATEADD(day, -{i}, CURRENT_DATE())\n'
                '            )\n'
                f'            SELECT region, SUM(amount) AS total, COUNT(*) AS n\n'
                '            FROM recent\n            GROUP BY region\n            HAVING SUM(amount) > 0\n'
                '            ORDER BY total DESC\n            """')
    if kind == 2:
        return f'f"SELECT {cols} FROM {t} WHERE region = \'{{region}}\' LIMIT {{limit}}"'
    return (f'"SELECT a.region, b.status, AVG(a.amount) FROM {t} a '
            f'JOIN orders b ON a.customer_id = b.customer_id GROUP BY 1, 2"')


def method(i):
    lines = [
        f"    def section_{i}(self, region: str, limit: int = {10 + i}) -> None:",
        f'        """Section {i}: totals per region."""',
        f"        df = self.query({sql_query(i)})",
        "        if df is None or len(df) == 0:",
        f'            st.info("No data for section {i}")',
        "            return",
        f"        totals = {{row['region']: row['total'] for row in df.to_dict('records')}}",
        f"        top = sorted(totals.items(), key=lambda kv: kv[1], reverse=True)[:{3 + i % 5}]",
        "        col1, col2 = st.columns(2)",
        "        with col1:",
        f'            st.metric("Regions", len(totals), delta={i})',
        "            for name, value in top:",
        '                st.write(f"{name}: {value:,.2f}")',
        "        with col2:",
        f'            st.bar_chart(df, x="region", y="total", height={200 + i})',
        "        try:",
        "            ratio = sum(totals.values()) / max(len(totals), 1)",
        "        except (TypeError, ZeroDivisionError) as exc:",
        f'            st.warning(f"section {i}: {{exc}}")',
        "            ratio = 0.0",
        f"        self.cache[{i}] = ratio",
        "",
    ]
    return lines


def page(app, n):
    cls = f"App{app}Page{n}Page"
    out = [
        f'"""Page {n} of app {app}: generated for the sluice check benchmark."""',
        "from __future__ import annotations",
        "",
        "import datetime as dt",
        "from typing import Any",
        "",
        "import streamlit as st",
        "from components.base_page import BasePage",
        "",
        f"REGIONS = {[f'R{k}' for k in range(6)]!r}",
        "",
        "",
        f"class {cls}(BasePage):",
        "    def __init__(self) -> None:",
        f'        super().__init__(title="App {app} page {n}")',
        "        self.cache: dict[int, float] = {}",
        "",
        "    def set_page_layout(self) -> None:",
        '        st.set_page_config(layout="wide")',
        "",
        "    def setup_ui(self) -> None:",
        "        st.header(self.title)",
        '        self.region = st.selectbox("Region", REGIONS)',
        "",
    ]
    sections = rng.randint(10, 14)
    for i in range(sections):
        out += method(i)
    out += ["    def run(self) -> None:", "        self.set_page_layout()", "        self.setup_ui()"]
    out += [f"        self.section_{i}(self.region)" for i in range(sections)]
    out += [
        "",
        "",
        "def format_amount(value: Any) -> str:",
        "    if isinstance(value, (int, float)):",
        '        return f"{value:,.2f}"',
        "    return str(value)",
        "",
        "",
        "def main() -> None:",
        f"    {cls}().run()",
        "",
        "",
        'if __name__ == "__main__":',
        "    main()",
        "",
    ]
    return "\n".join(out)


for a in range(apps):
    d = f"{ws}/applications/app_{a:03d}"
    os.makedirs(f"{d}/pages")
    for name, text in {
        "snowflake.yml": f"definition_version: 2\nentities:\n  app_{a:03d}:\n    type: streamlit\n    main_file: dashboard.py\n",
        "environment.yml": "name: sf_env\nchannels: [snowflake]\ndependencies: [pandas]\n",
        "share.yml": "share:\n  - DATA_ANALYST\n",
        "README.md": f"# app_{a:03d}\n",
    }.items():
        with open(f"{d}/{name}", "w") as f:
            f.write(text)
    with open(f"{d}/dashboard.py", "w") as f:
        f.write(page(a, 0))
    for n in range(1, pages):
        with open(f"{d}/pages/page_{n}.py", "w") as f:
            f.write(page(a, n))
PY

FILES=$(find "$WS/applications" -name '*.py' | wc -l)
LINES=$(find "$WS/applications" -name '*.py' -print0 | xargs -0 cat | wc -l)
echo "workspace: $FILES Python files, $LINES lines" >&2

# Sanity: the synthetic workspace is compliant, so both tools exit 0.
(cd "$WS" && "$SLUICE" check --format json > "$TMP/sluice.json") || {
    echo "sluice check found violations in the synthetic workspace:" >&2
    head -c 2000 "$TMP/sluice.json" >&2
    exit 1
}
"$RUFF" check --select E9 --no-cache --quiet "$WS/applications" > /dev/null

# Median wall and CPU (user + sys) seconds of RUNS runs; CPU is the fairer
# figure on a busy machine, wall is what a user waits.
measure() {
    local dir=$1; shift
    (cd "$dir" && python3 - "$RUNS" "$@" <<'PY'
import resource, statistics, subprocess, sys, time
runs, cmd = int(sys.argv[1]), sys.argv[2:]
walls, cpus = [], []
for _ in range(runs):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=False)
    walls.append(time.perf_counter() - start)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
print(f"{statistics.median(walls):.3f} {statistics.median(cpus):.3f}")
PY
    )
}

read -r SLUICE_WALL SLUICE_CPU < <(measure "$WS" "$SLUICE" check)
read -r RUFF_WALL RUFF_CPU < <(measure "$WS" "$RUFF" check --select E9 --no-cache --quiet applications)
ratio() { python3 -c "print(f'{$1 / $2:.2f}x')"; }

printf '\n%s Python files, %s lines, %s cores, median of %s runs\n' "$FILES" "$LINES" "$(nproc)" "$RUNS"
printf '| %-34s | %8s | %8s |\n' "command" "wall s" "CPU s"
printf '|%s|%s|%s|\n' "------------------------------------" "----------" "----------"
printf '| %-34s | %8s | %8s |\n' "sluice check" "$SLUICE_WALL" "$SLUICE_CPU"
printf '| %-34s | %8s | %8s |\n' "ruff check --select E9 --no-cache" "$RUFF_WALL" "$RUFF_CPU"
printf '| %-34s | %8s | %8s |\n' "ratio sluice / ruff (goal <= 1.5x)" "$(ratio "$SLUICE_WALL" "$RUFF_WALL")" "$(ratio "$SLUICE_CPU" "$RUFF_CPU")"
