#!/usr/bin/env bash
# Benchmark: PostgreSQL directly vs pgbouncer vs the Sluice gateway (`sluice proxy`), same pool
# settings, on loopback. Prints a throughput/latency/CPU table and an idle-client memory table.
# Not a test: it asserts nothing. See bench/README.md for how to read the columns.
#
#   bash bench/pgbench.sh                 # full run: 20 s per run, 2 rounds, -c 16/64/256, 10,000 idle
#   QUICK=1 bash bench/pgbench.sh         # smoke run: 5 s, 1 round, -c 16/64, 1,000 idle
#
# Environment (defaults in brackets; QUICK=1 changes the starred ones):
#   DURATION [20*]  seconds per pgbench run     ROUNDS [2*]          repeats of each comparison
#   CLIENTS ["16 64 256"*]  pgbench -c values   IDLE_CLIENTS [10000*] idle clients per pooler
#   MODES ["simple extended prepared"] (empty: idle clients only)   JOBS [2]  pgbench -j
#   SCALE [10] pgbench -i -s                    POOL_SIZE [20]       default_pool_size of both poolers
#   SLUICE_BIN  use this binary instead of `cargo build --release -p sluice`
#   USERLIST [auto]  auth_file secrets: "scram" (the role's SCRAM secret from pg_authid, as
#               pgbouncer recommends), "plain" (the cleartext password), or "auto": scram, but
#               if the gateway cannot log in to Postgres with it, the gateway alone gets plain
#   RAW_CSV     also copy every individual run to this CSV file
#   KEEP_WORK=1 keep the temporary directory (configs, logs, data) for inspection
#
# Everything it starts (Postgres, pgbouncer, the gateway, the idle clients) is stopped on exit;
# every wait is bounded. When run as root, Postgres and pgbouncer run as the `postgres` OS user.
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")

if [ "${QUICK:-0}" = 1 ]; then
  DURATION=${DURATION:-5} ROUNDS=${ROUNDS:-1} CLIENTS=${CLIENTS:-"16 64"} IDLE_CLIENTS=${IDLE_CLIENTS:-1000}
fi
DURATION=${DURATION:-20}
ROUNDS=${ROUNDS:-2}
CLIENTS=${CLIENTS:-"16 64 256"}
IDLE_CLIENTS=${IDLE_CLIENTS:-10000}
MODES=${MODES-"simple extended prepared"}  # empty: idle clients only
JOBS=${JOBS:-2}
SCALE=${SCALE:-10}
POOL_SIZE=${POOL_SIZE:-20}
USERLIST=${USERLIST:-auto}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PYTHON=${PYTHON:-python3}

# The pool settings both poolers share (max_client_conn = 12000, ...) are in lib.sh.
# Direct -c 256 plus both pools plus superuser slots must fit.
PG_MAX_CONNECTIONS=400

DB=bench BENCH_USER=bench BENCH_PASSWORD=bench SUPER_PASSWORD=postgres

# say, die, is_root, as_pg (Postgres and pgbouncer refuse to run as root), make_work_dir, stop_pid,
# start_postgres, create_bench_db, write_*_config, start_pooler, probe.
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

for v in DURATION ROUNDS JOBS SCALE POOL_SIZE IDLE_CLIENTS; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done
for c in $CLIENTS; do [[ $c =~ ^[0-9]+$ ]] || die "CLIENTS must be numbers, got '$c'"; done
for m in $MODES; do
  case $m in simple | extended | prepared) ;; *) die "MODES: unknown pgbench mode '$m'" ;; esac
done
case $USERLIST in auto | scram | plain) ;; *) die "USERLIST must be auto, scram or plain, got '$USERLIST'" ;; esac
[ -x "$PGBIN/postgres" ] || die "no PostgreSQL 15 binaries in $PGBIN (install postgresql-15)"
command -v "$PYTHON" >/dev/null || die "no $PYTHON (needed for the free-port pick and idle clients)"

# --- cleanup: stop everything this script started, whatever happens -----------------------------

work=$(make_work_dir sluice-bench)
pg_started=0 pgb_pid="" gw_pid="" idle_pid="" bench_pid=""


cleanup() {
  set +e
  trap - ERR
  [ -n "$bench_pid" ] && stop_pid "$bench_pid" # timeout(1) passes the TERM on to pgbench
  [ -n "$idle_pid" ] && stop_pid "$idle_pid"
  [ -n "$gw_pid" ] && stop_pid "$gw_pid"
  [ -n "$pgb_pid" ] && stop_pid "$pgb_pid"
  stop_postgres
  wait 2>/dev/null
  remove_work
}
install_cleanup

# --- limits, ports --------------------------------------------------------------------------------

# Every idle client is a descriptor in the pooler and in the client process.
need_fds=$((IDLE_CLIENTS + 1000))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need_fds" ]; then
  hard=$(ulimit -Hn)
  if [ "$hard" = unlimited ] || [ "$hard" -ge "$need_fds" ]; then
    ulimit -n "$need_fds"
  else
    ulimit -n "$hard"
    IDLE_CLIENTS=$((hard - 1000))
    say "open-file hard limit is $hard: lowering IDLE_CLIENTS to $IDLE_CLIENTS"
  fi
fi

read -r PG_PORT PGB_PORT GW_PORT < <(free_ports 3)

CLK_TCK=$(getconf CLK_TCK)

# pid: user+system CPU time of the whole process (all threads), in clock ticks.
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

# --- the gateway binary ---------------------------------------------------------------------------

gw_reason=""
if [ -n "${SLUICE_BIN:-}" ]; then
  sluice=$SLUICE_BIN
  [ -x "$sluice" ] || gw_reason="SLUICE_BIN=$sluice is not an executable file"
else
  sluice=$repo/target/release/sluice
  if ! command -v cargo >/dev/null && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
  fi
  say "building sluice (cargo build --release -p sluice)"
  if ! (cd "$repo" && cargo build --release -q -p sluice) >"$work/build.log" 2>&1; then
    gw_reason="cargo build --release -p sluice failed: $(grep -m1 '^error' "$work/build.log" || tail -n 1 "$work/build.log")"
  fi
fi

# --- PostgreSQL -----------------------------------------------------------------------------------

say "starting PostgreSQL 15 on 127.0.0.1:$PG_PORT"
start_postgres "$PG_MAX_CONNECTIONS"
create_bench_db "$SCALE"
# With a SCRAM secret a pooler checks a client's proof without PBKDF2 and logs in to Postgres
# with the ClientKey that proof reveals; with a cleartext password pgbouncer runs PBKDF2 with a
# fresh salt on every client login.
if [ "$USERLIST" = plain ]; then userlist=$work/userlist-plain.txt; else userlist=$work/userlist-scram.txt; fi
pgb_userlist=$userlist gw_userlist=$userlist

# --- pgbouncer ------------------------------------------------------------------------------------

pgb_reason=""
if ! command -v pgbouncer >/dev/null; then
  if is_root && command -v apt-get >/dev/null; then
    say "installing Debian's pgbouncer"
    if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pgbouncer \
      >"$work/apt.log" 2>&1; then
      service pgbouncer stop >/dev/null 2>&1 || true # its own service is not wanted
    fi
  fi
fi
if command -v pgbouncer >/dev/null; then
  write_pgbouncer_config "$work/pgbouncer.ini" "$PGB_PORT" "$pgb_userlist"
  # -u switches user inside pgbouncer itself, so its pid is pgbouncer's own (no runuser wrapper).
  pgb_cmd=(pgbouncer)
  is_root && pgb_cmd+=(-u postgres)
  start_pooler pgbouncer "$PGB_PORT" "$work/pgbouncer.log" 15 "${pgb_cmd[@]}" "$work/pgbouncer.ini"
  pgb_pid=$pooler_pid pgb_reason=$pooler_reason
  pgb_version=$(pgbouncer --version | head -n 1)
else
  pgb_reason="no pgbouncer binary (apt-get install pgbouncer)"
fi
[ -n "$pgb_reason" ] && say "pgbouncer not available: $pgb_reason"

# --- the gateway ----------------------------------------------------------------------------------

# auth_file: starts the gateway with it; sets gw_pid, or gw_reason when it is not usable.
start_gateway() {
  write_gateway_config "$work/sluice.toml" "$GW_PORT" "$1"
  # Quiet logs for both poolers: per-connection logging would be measured as pooler CPU.
  start_pooler "the gateway" "$GW_PORT" "$work/gateway.log" 15 \
    env RUST_LOG="${GW_RUST_LOG:-warn}" "$sluice" proxy --config "$work/sluice.toml"
  gw_pid=$pooler_pid gw_reason=$pooler_reason
}

if [ -z "$gw_reason" ]; then
  start_gateway "$gw_userlist"
  if [ -z "$gw_pid" ] && [ "$USERLIST" = auto ] && [[ $gw_reason == "SELECT 1 "* ]]; then
    say "gateway with a SCRAM secret in its auth_file: $gw_reason"
    say "retrying the gateway with the cleartext password in its auth_file"
    gw_reason="" gw_userlist=$work/userlist-plain.txt
    start_gateway "$gw_userlist"
  fi
fi
if [ -z "$gw_reason" ]; then
  gw_version="$("$sluice" --version 2>/dev/null | head -n 1 || true) at $sluice"
else
  say "gateway not available: $gw_reason"
fi

# --- pgbench runs, interleaved --------------------------------------------------------------------

raw=$work/runs.csv
echo "mode,clients,round,target,tps,latency_ms,transactions,cpu_ticks,status" >"$raw"

# target mode clients round: one pgbench -S run; appends one line to $raw.
run_pgbench() {
  local target=$1 mode=$2 clients=$3 round=$4 port pid="" before=0 after=0 out rc=0
  case $target in
    direct) port=$PG_PORT ;;
    pgbouncer) port=$PGB_PORT pid=$pgb_pid ;;
    gateway) port=$GW_PORT pid=$gw_pid ;;
  esac
  if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
    echo "$mode,$clients,$round,$target,,,,,$target exited" >>"$raw"
    say "  $target is no longer running"
    return
  fi
  [ -n "$pid" ] && before=$(cpu_ticks "$pid")
  # In the background and waited for, so that Ctrl-C or TERM is handled at once, not after the run.
  PGPASSWORD=$BENCH_PASSWORD timeout $((DURATION + 120)) "$PGBIN/pgbench" -h 127.0.0.1 \
    -p "$port" -U "$BENCH_USER" -n -S -M "$mode" -c "$clients" -j "$JOBS" -T "$DURATION" "$DB" \
    >"$work/pgbench.out" 2>&1 &
  bench_pid=$!
  wait "$bench_pid" || rc=$?
  bench_pid=""
  out=$(<"$work/pgbench.out")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && after=$(cpu_ticks "$pid")
  local tps lat txns
  tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out" | tail -n 1)
  lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' <<<"$out")
  txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
  if [ "$rc" -ne 0 ] || [ -z "$tps" ] || [ -z "$txns" ] || [ "$txns" -eq 0 ]; then
    local why
    why=$(grep -m1 -iE 'error|fatal|abort' <<<"$out" || tail -n 1 <<<"$out")
    echo "$mode,$clients,$round,$target,,,,,failed" >>"$raw"
    say "  $target -M $mode -c $clients failed (exit $rc): ${why//,/;}"
    return
  fi
  echo "$mode,$clients,$round,$target,$tps,$lat,$txns,$((after - before)),ok" >>"$raw"
  say "  $(printf '%-9s -M %-8s -c %-3s round %s: %10.0f tps  %7.3f ms' \
    "$target" "$mode" "$clients" "$round" "$tps" "$lat")"
}

targets_for() { # mode: the targets that run it, in interleaving order
  local t=(direct)
  # Debian's pgbouncer (1.18) predates prepared-statement support in transaction mode.
  [ -z "$pgb_reason" ] && [ "$1" != prepared ] && t+=(pgbouncer)
  [ -z "$gw_reason" ] && t+=(gateway)
  echo "${t[@]}"
}

nruns=0
for mode in $MODES; do for c in $CLIENTS; do
  n=$(targets_for "$mode" | wc -w); nruns=$((nruns + n * ROUNDS))
done; done
say "$nruns pgbench runs of ${DURATION} s (about $((nruns * (DURATION + 2) / 60 + 1)) min)"

# For each (mode, clients): direct, pgbouncer, gateway, then again: A B A B, so that drift in
# what else the shared machine is doing hits every target alike.
for mode in $MODES; do
  for c in $CLIENTS; do
    for round in $(seq "$ROUNDS"); do
      for target in $(targets_for "$mode"); do run_pgbench "$target" "$mode" "$c" "$round"; done
    done
  done
done
[ -n "${RAW_CSV:-}" ] && cp "$raw" "$RAW_CSV"

# --- idle clients ---------------------------------------------------------------------------------

idle=$work/idle.txt
: >"$idle"
# name port pid: opens IDLE_CLIENTS idle logged-in clients, records the pooler's RSS growth.
idle_run() {
  local name=$1 port=$2 pid=$3 line rc=0
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "$name exited" >>"$idle"
    say "  $name is no longer running"
    return
  fi
  say "opening $IDLE_CLIENTS idle clients to $name"
  "$PYTHON" "$here/idle_clients.py" --port "$port" --user "$BENCH_USER" --password "$BENCH_PASSWORD" \
    --dbname "$DB" --count "$IDLE_CLIENTS" --pid "$pid" >"$work/idle-$name.out" 2>"$work/idle-$name.err" &
  idle_pid=$!
  # Bounded: no login may take more than 30 s, and the whole run gets a generous ceiling.
  local deadline=$((SECONDS + 120 + IDLE_CLIENTS / 20))
  while kill -0 "$idle_pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.5; done
  if kill -0 "$idle_pid" 2>/dev/null; then
    stop_pid "$idle_pid"
    echo "$name timed-out" >>"$idle"
  else
    wait "$idle_pid" || rc=$?
    line=$(grep '^ok=' "$work/idle-$name.out" || true)
    echo "$name ${line:-error}" >>"$idle"
  fi
  idle_pid=""
  sed 's/^/  /' "$work/idle-$name.err" >&2
}
if [ "$IDLE_CLIENTS" -gt 0 ]; then
  [ -z "$pgb_reason" ] && idle_run pgbouncer "$PGB_PORT" "$pgb_pid"
  [ -z "$gw_reason" ] && idle_run gateway "$GW_PORT" "$gw_pid"
fi

# --- report ---------------------------------------------------------------------------------------

echo
echo "# $(nproc) CPUs, $("$PGBIN/postgres" --version), ${pgb_version:-no pgbouncer}, ${gw_version:-no gateway} ($(date -u '+%Y-%m-%d %H:%M UTC'))"
[ -n "$pgb_reason" ] && echo "# pgbouncer not available: $pgb_reason"
[ -n "$gw_reason" ] && echo "# gateway not available: $gw_reason"
secret_kind() { case $1 in *scram*) echo "SCRAM secret" ;; *) echo "cleartext password" ;; esac; }
auth_line="# auth_file holds:"
[ -z "$pgb_reason" ] && auth_line+=" pgbouncer: $(secret_kind "$pgb_userlist");"
[ -z "$gw_reason" ] && auth_line+=" gateway: $(secret_kind "$gw_userlist");"
echo "${auth_line%;}"
if [ -n "${MODES// /}" ]; then
  echo
  echo "## pgbench -S (scale $SCALE, ${DURATION} s per run, -j $JOBS, $ROUNDS round(s) interleaved; pool_mode=transaction, default_pool_size=$POOL_SIZE)"
  awk -F, -v tck="$CLK_TCK" -v modes="$MODES" -v clients="$CLIENTS" '
    NR == 1 { next }
    $9 == "ok" {
      k = $1 SUBSEP $2 SUBSEP $4
      n[k]++; tps[k] += $5; lat[k] += $6; tx[k] += $7; ticks[k] += $8
      if (!(k in lo) || $5 < lo[k]) lo[k] = $5
      if (!(k in hi) || $5 > hi[k]) hi[k] = $5
    }
    $9 != "ok" { bad[$1 SUBSEP $2 SUBSEP $4]++ }
    function has(m, c, t) { return n[m SUBSEP c SUBSEP t] > 0 }
    function mean_tps(m, c, t) { return tps[m SUBSEP c SUBSEP t] / n[m SUBSEP c SUBSEP t] }
    function cell(m, c, t, what,   k) {
      k = m SUBSEP c SUBSEP t
      if (!(n[k] > 0)) return (k in bad) ? "fail" : "-"
      if (what == "tps") return sprintf("%.0f", tps[k] / n[k])
      if (what == "lat") return sprintf("%.3f", lat[k] / n[k])
      if (what == "cpu") return sprintf("%.1f", ticks[k] * 1e6 / tck / tx[k])
    }
    function ratio(m1, c1, t1, m2, c2, t2) {
      if (!has(m1, c1, t1) || !has(m2, c2, t2)) return "-"
      return sprintf("%.2f", mean_tps(m1, c1, t1) / mean_tps(m2, c2, t2))
    }
    function cpu_ratio(m, c,   a, b) {
      a = m SUBSEP c SUBSEP "gateway"; b = m SUBSEP c SUBSEP "pgbouncer"
      if (!(n[a] > 0) || !(n[b] > 0) || ticks[b] == 0) return "-"
      return sprintf("%.2f", (ticks[a] / tx[a]) / (ticks[b] / tx[b]))
    }
    END {
      fmt = "%-9s %4s | %9s %9s %9s | %8s %8s %8s | %9s %9s | %7s %7s %7s | %9s\n"
      printf "%-14s | %-29s | %-26s | %-19s | %-23s | %9s\n", "", "TPS", "mean latency (ms)", \
        "CPU us per txn", "gateway ratios", "gateway"
      printf fmt, "mode", "-c", "direct", "pgbouncer", "gateway", "direct", "pgbounc", "gateway", \
        "pgbouncer", "gateway", "/pgb", "/direct", "CPU/pgb", "prep/ext"
      nm = split(modes, M, " "); nc = split(clients, C, " ")
      for (i = 1; i <= nm; i++) for (j = 1; j <= nc; j++) {
        m = M[i]; c = C[j]
        printf fmt, m, c, cell(m, c, "direct", "tps"), cell(m, c, "pgbouncer", "tps"), \
          cell(m, c, "gateway", "tps"), cell(m, c, "direct", "lat"), cell(m, c, "pgbouncer", "lat"), \
          cell(m, c, "gateway", "lat"), cell(m, c, "pgbouncer", "cpu"), cell(m, c, "gateway", "cpu"), \
          ratio(m, c, "gateway", m, c, "pgbouncer"), ratio(m, c, "gateway", m, c, "direct"), \
          cpu_ratio(m, c), (m == "prepared") ? ratio(m, c, "gateway", "extended", c, "gateway") : ""
      }
      # How far repeated runs of the same row disagree: the noise floor for reading the ratios.
      line = ""
      split("direct pgbouncer gateway", T, " ")
      for (t = 1; t <= 3; t++) {
        rows = 0; sum = 0
        for (k in n) {
          split(k, part, SUBSEP)
          if (part[3] != T[t] || n[k] < 2) continue
          rows++; sum += (hi[k] - lo[k]) / (tps[k] / n[k])
        }
        if (rows) line = line sprintf("  %s %.1f%%", T[t], 100 * sum / rows)
      }
      if (line != "") print "# round-to-round TPS spread ((max - min) / mean, averaged over rows):" line
    }' "$raw"
fi

if [ -s "$idle" ]; then
  echo
  echo "## $IDLE_CLIENTS idle clients per pooler (startup + SCRAM-SHA-256 login each, then idle)"
  fmt="%-9s | %6s %6s %7s | %9s %9s | %12s | %7s\n"
  # shellcheck disable=SC2059
  printf "$fmt" pooler ok failed dropped "RSS0 KiB" "RSS KiB" "bytes/client" "login s"
  while read -r name rest; do
    ok=- failed=- dropped=- rss_before_kib=- rss_after_kib=- bytes_per_client=$rest login_seconds=-
    for kv in $rest; do [[ $kv == *=* ]] && declare "${kv%%=*}=${kv#*=}"; done
    # shellcheck disable=SC2059
    printf "$fmt" "$name" "$ok" "$failed" "$dropped" "$rss_before_kib" "$rss_after_kib" \
      "$bytes_per_client" "$login_seconds"
  done <"$idle"
fi

# --- the issue's goals, checked against this run -----------------------------------------------

if [ -z "$gw_reason" ]; then
  gw_idle_bytes=$(sed -n 's/^gateway .*bytes_per_client=\([0-9.]*\).*/\1/p' "$idle")
  gw_idle_ok=$(sed -n 's/^gateway ok=\([0-9]*\).*/\1/p' "$idle")
  echo
  echo "## goals (issue 4), on this run"
  awk -F, -v idle_bytes="$gw_idle_bytes" -v idle_ok="${gw_idle_ok:-0}" -v clients="$CLIENTS" '
    NR == 1 || $9 != "ok" { next }
    {
      k = $1 SUBSEP $2 SUBSEP $4
      n[k]++; tps[k] += $5
      if ($1 != "prepared") { tx[$4] += $7; ticks[$4] += $8 }
    }
    function mean(m, c, t,   k) { k = m SUBSEP c SUBSEP t; return n[k] ? tps[k] / n[k] : -1 }
    function verdict(ok, known) { return !known ? "n/a" : ok ? "met" : "NOT met" }
    END {
      fmt = "%-44s %-40s %s\n"
      # 1. gateway/pgbouncer TPS >= 1.0 at -c 64, simple and extended
      detail = ""; known = 0; ok = 1
      split("simple extended", M, " ")
      for (i = 1; i <= 2; i++) {
        g = mean(M[i], 64, "gateway"); p = mean(M[i], 64, "pgbouncer")
        if (g < 0 || p <= 0) { detail = detail M[i] " not run  "; continue }
        known = 1; detail = detail sprintf("%s %.2f  ", M[i], g / p); if (g / p < 1.0) ok = 0
      }
      printf fmt, "gateway/pgbouncer TPS >= 1.0 at -c 64", detail, verdict(ok, known)
      # 2. gateway CPU per transaction <= pgbouncer (simple and extended runs, every -c)
      known = tx["gateway"] > 0 && tx["pgbouncer"] > 0
      g = known ? ticks["gateway"] / tx["gateway"] : 0; p = known ? ticks["pgbouncer"] / tx["pgbouncer"] : 0
      detail = known ? sprintf("%.2f x pgbouncer (simple+extended)", p ? g / p : 0) : ""
      printf fmt, "gateway CPU per txn <= pgbouncer", detail, verdict(g <= p, known)
      # 3. gateway -M prepared >= 0.9 x its own -M extended, at every -c measured
      detail = ""; known = 0; ok = 1
      nc = split(clients, C, " ")
      for (j = 1; j <= nc; j++) {
        e = mean("extended", C[j], "gateway"); p = mean("prepared", C[j], "gateway")
        if (e <= 0 || p < 0) continue
        known = 1; detail = detail sprintf("-c %s %.2f  ", C[j], p / e); if (p / e < 0.9) ok = 0
      }
      printf fmt, "gateway prepared/extended TPS >= 0.9", detail, verdict(ok, known)
      # 4. <= 2 KiB RSS per idle client
      known = idle_bytes != "" && idle_ok > 0
      detail = known ? sprintf("%.0f bytes", idle_bytes) : ""
      printf fmt, "gateway RSS per idle client <= 2048 bytes", detail, verdict(idle_bytes <= 2048, known)
    }' "$raw"
fi
