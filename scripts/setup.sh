#!/usr/bin/env bash
# Sets up everything Sluice and its tests need on a fresh Debian machine, idempotently:
# system packages (PostgreSQL server tools, pgbench, Redis, pgbouncer for the benchmark),
# the project's Python virtualenv in .venv (Streamlit, pytest, psycopg, Snowflake CLI, Snowpark, DuckDB),
# and the release build of the `sluice` binary.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_packages=(postgresql-15 postgresql-client-15 postgresql-contrib redis-server pgbouncer prometheus-pgbouncer-exporter python3-venv libclang-dev)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  # The packages' own services are not wanted: Sluice starts its own servers on loopback ports.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  for svc in postgresql redis-server pgbouncer prometheus-pgbouncer-exporter; do
    as_root service "$svc" stop >/dev/null 2>&1 || true
  done
else
  say "Debian packages present"
fi

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  say "creating the Python virtualenv in .venv"
  "$python" -m venv .venv
fi
stamp=.venv/.requirements.sha
want=$(sha256sum python/requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing Python packages from python/requirements.txt"
  .venv/bin/pip install -q --disable-pip-version-check -r python/requirements.txt
  echo "$want" > "$stamp"
else
  say "Python packages up to date"
fi

say "building sluice (release)"
cargo build --release -q -p sluice
say "ready: target/release/sluice"
