#!/usr/bin/env bash
# Benchmark: user-space CPU instructions per `pgbench -S` transaction of each pooler, counted by
# callgrind, so that the figure does not move with the load of a shared machine. For each
# (pooler, mode, -c) it runs pgbench twice through a fresh pooler under
# `valgrind --tool=callgrind`, a short and a long run (-c 8: -t 500 and -t 2500; -c 64: -t 50
# and -t 250), and divides the difference of the two instruction totals by the extra
# transactions, so that start-up, logins and shutdown cancel out. Prints one table row per pooler.
# Not a test: it asserts nothing. See bench/README.md ("CPU per transaction (instructions)").
#
#   bash bench/callgrind.sh                                   # target/release/sluice alone
#   SLUICE_BINS="before=/work/bin/sluice-before after=target/release/sluice" \
#     PGBOUNCER=/usr/sbin/pgbouncer bash bench/callgrind.sh   # several poolers side by side
#
# Environment [defaults]:
#   SLUICE_BIN [target/release/sluice]  the gateway binary (row "gateway"); never built here
#   SLUICE_BINS  "label=path ..." several gateway binaries instead, one row each
#   PGBOUNCER    "[label=]path ..." pgbouncer binaries to measure too (label: its --version)
#   GW_EXTRA     lines appended to the gateway's TOML, after its [proxy] keys (e.g.
#                'max_prepared_statements = 100'), to compare a setting off and on
#   GW_EXTRA_<label>  more lines for the row of that label only, so that one run can compare
#                SLUICE_BINS="off=path on=path" with GW_EXTRA_on='...'
#   PGB_EXTRA    lines appended to pgbouncer's [pgbouncer] section
#   MODES ["simple extended"]  pgbench -M values     CLIENTS ["8 64"]  pgbench -c values
#   JOBS [2] pgbench -j    POOL_SIZE [20] default_pool_size    RUN_TIMEOUT [1800] s per pgbench run
#   SHORT_T      -t of the short run instead of 4000/c (-c <= 8) or 3200/c (a quick check)
#   KEEP_WORK=1  keep the temporary directory (configs, logs, callgrind.out files)
#
# Everything listens on 127.0.0.1 ports picked free, lives in one temporary directory, and is
# stopped and deleted on exit; every wait is bounded. As root, Postgres and pgbouncer run as the
# `postgres` OS user.
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")

MODES=${MODES:-"simple extended"}
CLIENTS=${CLIENTS:-"8 64"}
JOBS=${JOBS:-2}
POOL_SIZE=${POOL_SIZE:-20}
RUN_TIMEOUT=${RUN_TIMEOUT:-1800}
SHORT_T=${SHORT_T:-}
GW_EXTRA=${GW_EXTRA:-}
PGB_EXTRA=${PGB_EXTRA:-}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
# Under callgrind a pooler starts and stops slowly (it reads the binary's debug information and
# writes its profile on exit).
START_TIMEOUT=120 STOP_TIMEOUT=300
SCALE=1
DB=bench BENCH_USER=bench BENCH_PASSWORD=bench SUPER_PASSWORD=postgres

# say, die, is_root, as_pg, make_work_dir, stop_pid, start_postgres, create_bench_db,
# write_*_config, start_pooler, free_ports.
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

[ -z "$SHORT_T" ] || [[ $SHORT_T =~ ^[1-9][0-9]*$ ]] || die "SHORT_T must be a positive number, got '$SHORT_T'"
for v in JOBS POOL_SIZE RUN_TIMEOUT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done
for c in $CLIENTS; do [[ $c =~ ^[1-9][0-9]*$ ]] || die "CLIENTS must be numbers, got '$c'"; done
for m in $MODES; do
  case $m in simple | extended | prepared) ;; *) die "MODES: unknown pgbench mode '$m'" ;; esac
done
[ -n "${MODES// /}" ] && [ -n "${CLIENTS// /}" ] || die "MODES and CLIENTS must not be empty"
command -v valgrind >/dev/null || die "no valgrind on PATH (apt-get install valgrind)"
[ -x "$PGBIN/postgres" ] || die "no PostgreSQL 15 binaries in $PGBIN (install postgresql-15)"
[ -x "$PGBIN/pgbench" ] || die "no pgbench in $PGBIN (install postgresql-15)"
command -v python3 >/dev/null || die "no python3 (needed to pick free ports)"

# --- the poolers: parallel arrays of kind, label, binary ------------------------------------------

kinds=() labels=() bins=()
# kind label path: adds a pooler, or stops with a one-line error naming the bad entry.
add_pooler() {
  local l
  [ -n "$2" ] || die "empty label for $3"
  [ -f "$3" ] && [ -x "$3" ] || die "$1 binary $3 is not an executable file"
  for l in "${labels[@]}"; do [ "$l" != "$2" ] || die "two poolers are labelled '$2'"; done
  kinds+=("$1") labels+=("$2") bins+=("$3")
}
if [ -n "${SLUICE_BINS:-}" ]; then
  for entry in $SLUICE_BINS; do
    [[ $entry == *=* ]] || die "SLUICE_BINS entries are label=path, got '$entry'"
    add_pooler gateway "${entry%%=*}" "${entry#*=}"
  done
else
  sluice=${SLUICE_BIN:-$repo/target/release/sluice}
  [ -x "$sluice" ] || die "no gateway binary at $sluice (cargo build --release -p sluice, or set SLUICE_BIN)"
  add_pooler gateway gateway "$sluice"
fi
for entry in ${PGBOUNCER:-}; do
  path=${entry#*=}
  [ -x "$path" ] || die "PGBOUNCER: $path is not an executable file"
  if [[ $entry == *=* ]]; then label=${entry%%=*}; else
    label=$("$path" --version | head -n 1 | sed 's/^PgBouncer /pgbouncer /')
  fi
  add_pooler pgbouncer "$label" "$path"
done

# clients: -t of the short run; the long run is 5 times as long. -c 8: 500 (16,000 extra
# transactions), -c 64: 50 (12,800): enough that the difference dwarfs the run-to-run spread.
short_t() {
  if [ -n "$SHORT_T" ]; then echo "$SHORT_T"
  elif [ "$1" -le 8 ]; then echo $(((4000 + $1 - 1) / $1))
  else echo $(((3200 + $1 - 1) / $1)); fi
}

# --- cleanup: stop everything this script started, whatever happens -----------------------------

work=$(make_work_dir sluice-callgrind)
pg_started=0 pooler_pid="" bench_pid=""
cleanup() {
  set +e
  trap - ERR
  [ -n "$bench_pid" ] && stop_pid "$bench_pid" # timeout(1) passes the TERM on to pgbench
  [ -n "$pooler_pid" ] && stop_pid "$pooler_pid" 30
  stop_postgres
  wait 2>/dev/null
  remove_work
}
install_cleanup

read -r PG_PORT < <(free_ports 1)
say "starting PostgreSQL 15 on 127.0.0.1:$PG_PORT"
start_postgres 100
create_bench_db "$SCALE"
userlist=$work/userlist-scram.txt

# i: the extra TOML lines of gateway i: GW_EXTRA, then GW_EXTRA_<its label>.
gateway_extra() {
  local own="GW_EXTRA_${labels[$1]}"
  printf '%s\n' "$GW_EXTRA"
  if [[ ${labels[$1]} =~ ^[A-Za-z0-9_]+$ ]]; then printf '%s\n' "${!own:-}"; fi
}

# --- one measurement ------------------------------------------------------------------------------

# i mode clients transactions: runs pgbench once through a fresh pooler i under callgrind; sets
# run_ir (its instruction total), or run_reason (and start_failed=1 if the pooler did not start).
callgrind_run() {
  local i=$1 mode=$2 clients=$3 txns=$4 port rc=0 out processed started=$SECONDS
  local tag="run$i-$mode-c$clients-t$txns" cmd
  run_ir="" run_reason="" start_failed=0
  read -r port < <(free_ports 1)
  local vg=(valgrind --tool=callgrind --vgdb=no --callgrind-out-file="$work/$tag.callgrind.out"
    --log-file="$work/$tag.valgrind.log")
  case ${kinds[$i]} in
    gateway)
      write_gateway_config "$work/$tag.toml" "$port" "$userlist" "$(gateway_extra "$i")"
      # env before valgrind: valgrind does not follow an exec, so it must run the binary itself.
      cmd=(env RUST_LOG="${GW_RUST_LOG:-warn}" "${vg[@]}" "${bins[$i]}" proxy --config "$work/$tag.toml")
      ;;
    pgbouncer)
      write_pgbouncer_config "$work/$tag.ini" "$port" "$userlist" "$PGB_EXTRA"
      # Not pgbouncer's -u: callgrind creates its output file at start and writes it at exit, so it
      # must run as postgres throughout. setpriv execs (no process in between), so the pid stays.
      cmd=("${vg[@]}" "${bins[$i]}" "$work/$tag.ini")
      is_root && cmd=(setpriv --reuid=postgres --regid=postgres --init-groups "${cmd[@]}")
      ;;
  esac
  start_pooler "${labels[$i]}" "$port" "$work/$tag.log" "$START_TIMEOUT" "${cmd[@]}"
  if [ -n "$pooler_reason" ]; then
    run_reason=$pooler_reason start_failed=1
    return
  fi
  # In the background and waited for, so that Ctrl-C or TERM is handled at once.
  PGPASSWORD=$BENCH_PASSWORD timeout "$RUN_TIMEOUT" "$PGBIN/pgbench" -h 127.0.0.1 -p "$port" \
    -U "$BENCH_USER" -n -S -M "$mode" -c "$clients" -j "$JOBS" -t "$txns" "$DB" \
    >"$work/$tag.pgbench" 2>&1 &
  bench_pid=$!
  wait "$bench_pid" || rc=$?
  bench_pid=""
  processed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$work/$tag.pgbench")
  # TERM makes either pooler exit normally, and callgrind writes its profile as the process ends.
  stop_pid "$pooler_pid" "$STOP_TIMEOUT"
  wait "$pooler_pid" 2>/dev/null || true
  pooler_pid=""
  if [ "$rc" -eq 124 ]; then
    run_reason="pgbench did not finish within RUN_TIMEOUT=$RUN_TIMEOUT s"
  elif [ "$rc" -ne 0 ] || [ "${processed:-0}" != $((clients * txns)) ]; then
    run_reason="pgbench exit $rc, ${processed:-0} of $((clients * txns)) transactions: $(grep -m1 -iE 'error|fatal|abort' "$work/$tag.pgbench" || tail -n 1 "$work/$tag.pgbench")"
  else
    out=$work/$tag.callgrind.out
    # The summary line is what callgrind_annotate prints as PROGRAM TOTALS (all threads).
    [ -f "$out" ] && run_ir=$(awk '$1 == "summary:" { n = $2 } END { print n }' "$out")
    if ! [[ $run_ir =~ ^[0-9]+$ ]]; then
      run_ir=""
      run_reason="no callgrind total in $out: $(grep . "$work/$tag.valgrind.log" 2>/dev/null | tail -n 1)"
    fi
  fi
  say "  $(printf '%-18s -M %-8s -c %-3s -t %-5s' "${labels[$i]}" "$mode" "$clients" "$txns") ${run_ir:-failed} Ir ($((SECONDS - started)) s)"
}

# --- the runs -------------------------------------------------------------------------------------

declare -A per_txn=()
ncells=$((${#labels[@]} * $(wc -w <<<"$MODES") * $(wc -w <<<"$CLIENTS")))
say "$((ncells * 2)) pgbench runs, each through a fresh pooler under callgrind"
for i in "${!labels[@]}"; do
  start_failed=0
  for c in $CLIENTS; do
    for mode in $MODES; do
      # A pooler that did not start once will not start for the next cell either.
      [ "$start_failed" = 1 ] && per_txn[$i,$mode,$c]=- && continue
      t1=$(short_t "$c") t2=$((5 * $(short_t "$c")))
      callgrind_run "$i" "$mode" "$c" "$t1"
      ir1=$run_ir why=$run_reason
      if [ -z "$why" ]; then
        callgrind_run "$i" "$mode" "$c" "$t2"
        why=$run_reason
      fi
      if [ -n "$why" ]; then
        say "${labels[$i]} -M $mode -c $c failed: $why"
        per_txn[$i,$mode,$c]=fail
      else
        per_txn[$i,$mode,$c]=$(((run_ir - ir1 + (t2 - t1) * c / 2) / ((t2 - t1) * c)))
      fi
    done
  done
done

# --- report ---------------------------------------------------------------------------------------

echo
echo "# user-space instructions per pgbench -S transaction under callgrind: (Ir of the long run - Ir of the short run) / extra transactions"
echo "# $(nproc) CPUs, $("$PGBIN/postgres" --version), $(valgrind --version), pgbench -n -S -j $JOBS, scale $SCALE; pool_mode=transaction, default_pool_size=$POOL_SIZE, SCRAM secret in auth_file ($(date -u '+%Y-%m-%d %H:%M UTC'))"
for c in $CLIENTS; do
  t1=$(short_t "$c")
  echo "# -c $c: -t $t1 and -t $((5 * t1)), $((4 * t1 * c)) extra transactions"
done
for i in "${!labels[@]}"; do
  line="# ${labels[$i]}: $("${bins[$i]}" --version 2>/dev/null | head -n 1 || true) at ${bins[$i]}"
  if [ "${kinds[$i]}" = gateway ]; then
    extra=$(gateway_extra "$i" | grep . | paste -sd ';' || true)
    [ -n "$extra" ] && line+="; config also has: $extra"
  fi
  echo "$line"
done
[ -n "$PGB_EXTRA" ] && echo "# pgbouncer config also has: $(grep . <<<"$PGB_EXTRA" | paste -sd ';')"
echo
header="| pooler |" rule="|---|"
for c in $CLIENTS; do for mode in $MODES; do header+=" $mode -c $c |" rule+="---|"; done; done
echo "$header"
echo "$rule"
for i in "${!labels[@]}"; do
  row="| ${labels[$i]} |"
  for c in $CLIENTS; do for mode in $MODES; do row+=" ${per_txn[$i,$mode,$c]} |"; done; done
  echo "$row"
done
