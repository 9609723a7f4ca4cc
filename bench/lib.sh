# Shell helpers the benchmarks share (sourced, not run): messages, running as the `postgres` OS
# user when root (PostgreSQL refuses to run as root), a work folder Postgres may write, and
# stopping a process within a bounded time.

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
is_root() { [ "$(id -u)" -eq 0 ]; }
# Runs a command as the postgres user when we are root.
as_pg() { if is_root; then runuser -u postgres -- "$@"; else "$@"; fi; }

# Prints a new temporary folder (prefix $1) that the postgres user can write when we are root.
make_work_dir() {
  local dir
  dir=$(mktemp -d "/tmp/$1.XXXXXX")
  chmod 755 "$dir"
  if is_root; then chown postgres: "$dir"; fi
  printf '%s\n' "$dir"
}

# pid: TERM, wait up to 10 s, then KILL.
stop_pid() {
  local pid=$1 _
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

# Installs the script's own `cleanup` function to run on exit (Ctrl-C and TERM included), and names
# the failing command when `set -e` stops the script rather than vanishing without a word.
install_cleanup() {
  trap cleanup EXIT
  trap 'say "error: line $LINENO: \`$BASH_COMMAND\` failed"' ERR
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# Deletes the work folder $work, or keeps it with KEEP_WORK=1.
remove_work() {
  if [ "${KEEP_WORK:-0}" = 1 ]; then say "kept $work"; else rm -rf "$work"; fi
}
