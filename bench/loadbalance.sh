#!/usr/bin/env bash
# Benchmark: read load balancing and sticky read-your-writes through the Sluice gateway.
# Starts a PostgreSQL 15 primary and two streaming hot standbys (pg_basebackup -R), then runs
#   1. pgbench -S through the gateway with 0, 1 and 2 replicas (same client count);
#   2. a write-then-read workload (UPDATE a row, then SELECT it) with sticky = "connection"
#      versus sticky = "off";
# and prints TPS, the share of statements the replicas served (from SHOW sluice.hosts), and the
# per-statement latency of the write (pgbench -r), whose difference between sticky on and off is
# the cost of sticky bookkeeping (reading pg_current_wal_insert_lsn() after each write).
# Not a test: it asserts nothing. See bench/README.md.
#
#   bash bench/loadbalance.sh                 # 5 s per run
#   DURATION=20 bash bench/loadbalance.sh
#
# Environment [defaults]: DURATION [5] seconds per run, CLIENTS [16] pgbench -c, JOBS [2] -j,
#   SCALE [10] pgbench -i -s, POOL_SIZE [20] default_pool_size,
#   SLUICE_BIN (else target/release/sluice, built with cargo when missing), KEEP_WORK=1.
# Everything it starts is stopped on exit; every wait is bounded. As root, Postgres runs as the
# `postgres` OS user.
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
DURATION=${DURATION:-5}
CLIENTS=${CLIENTS:-16}
JOBS=${JOBS:-2}
SCALE=${SCALE:-10}
POOL_SIZE=${POOL_SIZE:-20}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
DB=bench BENCH_USER=bench BENCH_PASSWORD=bench

# say, die, is_root, as_pg, make_work_dir, stop_pid.
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

for v in DURATION CLIENTS JOBS SCALE POOL_SIZE; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done
[ -x "$PGBIN/postgres" ] || die "no PostgreSQL 15 binaries in $PGBIN"

work=$(make_work_dir sluice-lb-bench)
started_nodes=() gw_pid="" bench_pid=""

cleanup() {
  set +e
  trap - ERR
  [ -n "$bench_pid" ] && stop_pid "$bench_pid"
  [ -n "$gw_pid" ] && stop_pid "$gw_pid"
  for node in "${started_nodes[@]}"; do
    as_pg "$PGBIN/pg_ctl" -D "$work/$node" -m immediate -w stop >/dev/null 2>&1
  done
  wait 2>/dev/null
  remove_work
}
install_cleanup

read -r P0 P1 P2 GW_PORT < <(python3 -c '
import socket
s = [socket.socket() for _ in range(4)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))')

# --- the gateway binary ---------------------------------------------------------------------------
sluice=${SLUICE_BIN:-$repo/target/release/sluice}
if [ ! -x "$sluice" ]; then
  say "building sluice (cargo build --release -p sluice)"
  (cd "$repo" && cargo build --release -q -p sluice) || die "cargo build failed"
fi

# --- primary and two standbys ---------------------------------------------------------------------
say "starting a primary on $P0 and standbys on $P1, $P2"
echo postgres >"$work/pwfile"
is_root && chown postgres: "$work/pwfile"
as_pg "$PGBIN/initdb" -D "$work/primary" -U postgres --pwfile="$work/pwfile" -E UTF8 \
  --auth-local=trust --auth-host=scram-sha-256 >"$work/initdb.log" 2>&1 || die "initdb failed"
cat >>"$work/primary/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $P0
unix_socket_directories = '$work'
max_connections = 200
shared_buffers = 128MB
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = replica
max_wal_senders = 10
hot_standby = on
password_encryption = 'scram-sha-256'
EOF
start_node() { # dir: start and remember it
  as_pg "$PGBIN/pg_ctl" -D "$work/$1" -l "$work/$1.log" -w -t 60 start >/dev/null ||
    die "$1 did not start: $(tail -n 3 "$work/$1.log")"
  started_nodes+=("$1")
}
start_node primary
psql_at() { # port db sql...
  local port=$1 db=$2
  shift 2
  PGPASSWORD=postgres "$PGBIN/psql" -h 127.0.0.1 -p "$port" -U postgres -d "$db" -AtX -v ON_ERROR_STOP=1 "$@"
}
psql_at "$P0" postgres -q -c "CREATE ROLE $BENCH_USER LOGIN PASSWORD '$BENCH_PASSWORD'" \
  -c "CREATE DATABASE $DB OWNER $BENCH_USER"
say "pgbench -i -s $SCALE"
PGPASSWORD=$BENCH_PASSWORD "$PGBIN/pgbench" -h 127.0.0.1 -p "$P0" -U "$BENCH_USER" -i -s "$SCALE" -q "$DB" \
  >"$work/pgbench-init.log" 2>&1 || die "pgbench -i failed: $(tail -n 1 "$work/pgbench-init.log")"
for i in 1 2; do
  port_var=P$i
  # -w: fail rather than prompt; the password comes from PGPASSWORD (initdb allows replication).
  PGPASSWORD=postgres as_pg timeout 300 "$PGBIN/pg_basebackup" -w -h 127.0.0.1 -p "$P0" -U postgres \
    -D "$work/replica$i" -R -X stream -c fast \
    >"$work/basebackup$i.log" 2>&1 || die "pg_basebackup failed: $(tail -n 1 "$work/basebackup$i.log")"
  echo "port = ${!port_var}" >>"$work/replica$i/postgresql.conf"
  start_node "replica$i"
done
for i in 1 2; do # bounded: both standbys replay what pgbench -i wrote
  port_var=P$i
  lsn=$(psql_at "$P0" postgres -c "SELECT pg_current_wal_lsn()")
  for _ in $(seq 300); do
    [ "$(psql_at "${!port_var}" postgres -c "SELECT pg_last_wal_replay_lsn() >= '$lsn'")" = t ] && break
    sleep 0.2
  done
done

printf '"%s" "%s"\n' "$BENCH_USER" "$BENCH_PASSWORD" >"$work/userlist.txt"
cat >"$work/write_read.sql" <<'EOF'
\set aid random(1, 100000 * :scale)
\set delta random(-5000, 5000)
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
EOF

# --- gateway per configuration --------------------------------------------------------------------
start_gateway() { # replicas(0-2) sticky
  local list=""
  [ "$1" -ge 1 ] && list="\"127.0.0.1:$P1\""
  [ "$1" -ge 2 ] && list="$list, \"127.0.0.1:$P2\""
  cat >"$work/sluice.toml" <<EOF
[proxy]
listen_addr = "127.0.0.1"
listen_port = $GW_PORT
pool_mode = "transaction"
max_client_conn = 1000
default_pool_size = $POOL_SIZE
auth_type = "scram-sha-256"
auth_file = "userlist.txt"

[databases.$DB]
host = "127.0.0.1"
port = $P0
replicas = [$list]

[load_balancing]
sticky = "$2"
EOF
  RUST_LOG=warn "$sluice" proxy --config "$work/sluice.toml" >"$work/gateway.log" 2>&1 &
  gw_pid=$!
  local _
  for _ in $(seq 150); do
    if [ "$(gw_sql -c 'SELECT 1' 2>/dev/null)" = 1 ]; then break; fi
    kill -0 "$gw_pid" 2>/dev/null || die "gateway exited: $(tail -n 1 "$work/gateway.log")"
    sleep 0.1
  done
  # Bounded: every configured replica is up in the gateway's host table.
  if [ "$1" -gt 0 ]; then
    for _ in $(seq 100); do
      [ "$(gw_sql -c 'SHOW sluice.hosts' | grep -c '^replica|.*|up|t|')" -eq "$1" ] && break
      sleep 0.1
    done
  fi
}
gw_sql() { PGPASSWORD=$BENCH_PASSWORD "$PGBIN/psql" -h 127.0.0.1 -p "$GW_PORT" -U "$BENCH_USER" -d "$DB" -AtX "$@"; }
stop_gateway() { stop_pid "$gw_pid"; gw_pid=""; }
CLK_TCK=$(getconf CLK_TCK)
# pid: user+system CPU time of the whole process, in clock ticks.
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

# served statements per role from SHOW sluice.hosts: "primary replicas"
served() {
  if [ "$1" -eq 0 ]; then echo "0 0"; return; fi
  gw_sql -c 'SHOW sluice.hosts' | awk -F'|' '$1 == "primary" { p += $9 } $1 == "replica" { r += $9 } END { print p + 0, r + 0 }'
}

results=$work/results.txt
: >"$results"
run() { # label replicas sticky pgbench-args...
  local label=$1 replicas=$2 sticky=$3
  shift 3
  start_gateway "$replicas" "$sticky"
  local before after out rc=0 ticks0 ticks1
  read -r -a before <<<"$(served "$replicas")"
  ticks0=$(cpu_ticks "$gw_pid")
  PGPASSWORD=$BENCH_PASSWORD timeout $((DURATION + 60)) "$PGBIN/pgbench" -h 127.0.0.1 -p "$GW_PORT" \
    -U "$BENCH_USER" -n -c "$CLIENTS" -j "$JOBS" -T "$DURATION" "$@" "$DB" >"$work/pgbench.out" 2>&1 &
  bench_pid=$!
  wait "$bench_pid" || rc=$?
  bench_pid=""
  ticks1=$(cpu_ticks "$gw_pid")
  read -r -a after <<<"$(served "$replicas")"
  stop_gateway
  out=$(<"$work/pgbench.out")
  local tps failed update_ms primary replicas_served share txns cpu_us
  txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
  cpu_us=$(awk -v t="$((ticks1 - ticks0))" -v n="${txns:-0}" -v hz="$CLK_TCK" \
    'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "-" }')
  tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out" | tail -n 1)
  failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
  update_ms=$(awk '/UPDATE pgbench_accounts/ { print $1 }' <<<"$out")
  primary=$((after[0] - before[0])) replicas_served=$((after[1] - before[1]))
  share=$(awk -v p="$primary" -v r="$replicas_served" 'BEGIN { if (p + r > 0) printf "%.0f%%", 100 * r / (p + r); else print "0%" }')
  [ "$rc" -eq 0 ] || say "  $label: pgbench exit $rc: $(grep -m1 -iE 'error|abort' <<<"$out" || true)"
  printf '| %s | %s | %s | %.0f | %s | %s | %s | %s |\n' "$label" "$replicas" "$sticky" "${tps:-0}" "$share" \
    "${update_ms:--}" "$cpu_us" "${failed:-?}" >>"$results"
  say "  $(tail -n 1 "$results")"
}

say "running (${DURATION} s each, -c $CLIENTS -j $JOBS)"
for r in 0 1 2; do run "pgbench -S" "$r" connection -S; done
run "write then read" 2 connection -r -f "$work/write_read.sql"
run "write then read" 2 off -r -f "$work/write_read.sql"

echo
echo "# $(nproc) CPUs, $("$PGBIN/postgres" --version), $("$sluice" --version 2>/dev/null | head -n 1) ($(date -u '+%Y-%m-%d %H:%M UTC'))"
echo "# pgbench -c $CLIENTS -j $JOBS -T $DURATION, scale $SCALE, pool_mode=transaction, default_pool_size=$POOL_SIZE per host"
echo
echo "| workload | replicas | sticky | TPS | statements on replicas | UPDATE latency (ms) | gateway CPU µs/txn | failed |"
echo "|---|---|---|---|---|---|---|---|"
cat "$results"
