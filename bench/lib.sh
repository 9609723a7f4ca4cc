# Shell helpers the benchmarks share (sourced, not run): messages, running as the `postgres` OS
# user when root (PostgreSQL refuses to run as root), a work folder Postgres may write, stopping
# a process within a bounded time, and (below) a throwaway PostgreSQL with the bench database,
# and pgbouncer's and the gateway's configs with the same pool settings, started and checked alike.

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

# pid [seconds]: TERM, wait up to that long (10 s), then KILL.
stop_pid() {
  local pid=$1 _
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq $((${2:-10} * 10))); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
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

# --- PostgreSQL and the poolers -------------------------------------------------------------------
# The functions below use the caller's globals: work (from make_work_dir), PGBIN, DB, BENCH_USER,
# BENCH_PASSWORD, SUPER_PASSWORD, PG_PORT and POOL_SIZE.

# The pool settings every pooler under test gets, besides pool_mode = transaction and
# auth_type = scram-sha-256: `key = value` lines that mean the same in pgbouncer's ini and in the
# gateway's TOML (same names and units), so that both are compared on the same terms.
pool_settings() {
  cat <<EOF
max_client_conn = 12000
default_pool_size = $POOL_SIZE
min_pool_size = 0
reserve_pool_size = 0
server_idle_timeout = 600
query_wait_timeout = 120
EOF
}

# count: prints that many distinct free TCP ports on 127.0.0.1, on one line.
free_ports() {
  "${PYTHON:-python3}" - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
}

# max_connections: a throwaway PostgreSQL in $work/data on 127.0.0.1:$PG_PORT (scram-sha-256 over
# TCP); sets pg_started=1 first, so that the caller's cleanup stops it (stop_postgres).
start_postgres() {
  echo "$SUPER_PASSWORD" >"$work/pwfile"
  if is_root; then chown postgres: "$work/pwfile"; fi
  as_pg "$PGBIN/initdb" -D "$work/data" -U postgres --pwfile="$work/pwfile" -E UTF8 \
    --auth-local=trust --auth-host=scram-sha-256 >"$work/initdb.log" 2>&1 ||
    die "initdb failed: $(tail -n 1 "$work/initdb.log")"
  # Throwaway data: durability off so that pgbench -i is quick; the select-only runs never write.
  cat >>"$work/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$work'
max_connections = $1
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
password_encryption = 'scram-sha-256'
EOF
  pg_started=1
  as_pg "$PGBIN/pg_ctl" -D "$work/data" -l "$work/postgres.log" -w -t 60 start >/dev/null ||
    die "PostgreSQL did not start: $(tail -n 3 "$work/postgres.log")"
}

stop_postgres() {
  if [ "${pg_started:-0}" = 1 ]; then
    as_pg "$PGBIN/pg_ctl" -D "$work/data" -m immediate -w stop >/dev/null 2>&1
  fi
}

super_sql() {
  PGPASSWORD=$SUPER_PASSWORD "$PGBIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres \
    -AtX -v ON_ERROR_STOP=1 "$@"
}

# file secret: one pgbouncer-format auth_file line for the bench user.
write_userlist() {
  printf '"%s" "%s"\n' "$BENCH_USER" "$2" >"$1"
  if is_root; then chown postgres: "$1"; fi
  chmod 600 "$1"
}

# scale: role and database $DB, `pgbench -i -s scale`, and two auth_files for poolers:
# $work/userlist-scram.txt with the role's SCRAM secret from pg_authid (a pooler then checks a
# client's proof without PBKDF2 and logs in to Postgres with the ClientKey that proof reveals)
# and $work/userlist-plain.txt with the cleartext password (pgbouncer then runs PBKDF2 with a
# fresh salt on every client login).
create_bench_db() {
  super_sql -q -c "CREATE ROLE $BENCH_USER LOGIN PASSWORD '$BENCH_PASSWORD'" \
    -c "CREATE DATABASE $DB OWNER $BENCH_USER"
  say "pgbench -i -s $1"
  PGPASSWORD=$BENCH_PASSWORD "$PGBIN/pgbench" -h 127.0.0.1 -p "$PG_PORT" -U "$BENCH_USER" \
    -i -s "$1" -q "$DB" >"$work/pgbench-init.log" 2>&1 ||
    die "pgbench -i failed: $(tail -n 1 "$work/pgbench-init.log")"
  write_userlist "$work/userlist-scram.txt" \
    "$(super_sql -c "SELECT rolpassword FROM pg_authid WHERE rolname = '$BENCH_USER'")"
  write_userlist "$work/userlist-plain.txt" "$BENCH_PASSWORD"
}

# file port auth_file [extra]: pgbouncer's ini, logging to stderr; extra lines go in [pgbouncer].
write_pgbouncer_config() {
  cat >"$1" <<EOF
[databases]
$DB = host=127.0.0.1 port=$PG_PORT dbname=$DB

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $2
unix_socket_dir =
pool_mode = transaction
$(pool_settings)
auth_type = scram-sha-256
auth_file = $3
log_connections = 0
log_disconnections = 0
${4:-}
EOF
  if is_root; then chown postgres: "$1"; fi
}

# file port auth_file [extra]: the gateway's TOML with the same pool settings. [proxy] comes last
# so that extra lines (bare keys) land in it; extra lines may also open tables of their own.
write_gateway_config() {
  cat >"$1" <<EOF
[databases.$DB]
host = "127.0.0.1"
port = $PG_PORT
dbname = "$DB"

[proxy]
listen_addr = "127.0.0.1"
listen_port = $2
pool_mode = "transaction"
$(pool_settings)
auth_type = "scram-sha-256"
auth_file = "$3"
${4:-}
EOF
}

# port pid timeout_s: true once something accepts TCP on the port; false if pid died or time ran out.
wait_listening() {
  local port=$1 pid=$2 deadline=$((SECONDS + $3))
  while [ $SECONDS -lt $deadline ]; do
    [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null && return 1
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  return 1
}

# port: the output of one SELECT 1 as the bench user, or the error.
probe() {
  PGPASSWORD=$BENCH_PASSWORD PGCONNECT_TIMEOUT=10 timeout 20 "$PGBIN/psql" -h 127.0.0.1 -p "$1" \
    -U "$BENCH_USER" -d "$DB" -AtX -c 'SELECT 1' 2>&1 | tail -n 1 || true
}

# name port log timeout_s command...: starts a pooler in the background (stdout and stderr to log),
# waits for it to listen and checks it with one SELECT 1. Sets pooler_pid, or, when it does not
# start or fails the check, stops it and sets pooler_reason (and pooler_pid="").
start_pooler() {
  local name=$1 port=$2 log=$3 timeout_s=$4 status=0 answer
  shift 4
  pooler_reason=""
  "$@" >"$log" 2>&1 &
  pooler_pid=$!
  if ! wait_listening "$port" "$pooler_pid" "$timeout_s"; then
    if kill -0 "$pooler_pid" 2>/dev/null; then
      pooler_reason="nothing listening on 127.0.0.1:$port after $timeout_s s"
    else
      wait "$pooler_pid" || status=$?
      pooler_reason="$name exited with status $status: $(grep . "$log" | tail -n 1)"
    fi
  else
    answer=$(probe "$port")
    [ "$answer" = 1 ] || pooler_reason="SELECT 1 through $name failed: $answer"
  fi
  if [ -n "$pooler_reason" ]; then
    stop_pid "$pooler_pid"
    pooler_pid=""
  fi
}
