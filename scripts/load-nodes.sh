#!/usr/bin/env bash
# Load benchmark of the stores side by side, in one run on this machine: answered visitor
# messages per second and latency for one node on sled, one node on PostgreSQL, and two
# nodes on one PostgreSQL database with the traffic split between them (a wrk per node,
# half the connections each). PostgreSQL is a throwaway cluster with its default
# durability (fsync on, synchronous_commit on), started here on a free port. Installs wrk
# and PostgreSQL from Debian when missing (needs root or sudo).
#
#   scripts/load-nodes.sh [DURATION_SECONDS=20] [CONNECTIONS=32]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-20}
CONNS=${2:-32}
OUT=target/load-nodes
mkdir -p "$OUT"
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
command -v wrk >/dev/null || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk; }
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$PGBIN" ]; then
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq postgresql
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
build=(cargo build --release --bin kefu --example node_latency)
# Where cargo puts them (a CARGO_TARGET_DIR elsewhere too).
BIN=${CARGO_TARGET_DIR:-target}/release
"${build[@]}" >/dev/null 2>&1 || "${build[@]}"
ADMIN_TOKEN=load-nodes-admin-token-0123456789
ADMIN_HASH=$(printf %s "$ADMIN_TOKEN" | sha256sum | cut -d' ' -f1)

WORK=$(mktemp -d)
PIDS=()
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  as_pg "$PGBIN/pg_ctl" -D "$WORK/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
[ "$(id -u)" = 0 ] && chown postgres "$WORK"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PGPORT=$(free_port)
as_pg "$PGBIN/initdb" -D "$WORK/pg" -U kefu --auth=trust -E UTF8 --no-locale >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$WORK/pg" -o "-p $PGPORT -k $WORK -c listen_addresses=127.0.0.1 -c max_connections=200" -l "$WORK/pg.log" -w start >/dev/null

# start_node NAME PORT STORE CPU: a kefu node pinned to CPU.
start_node() {
  local name=$1 port=$2 store=$3 cpu=$4
  mkdir -p "$WORK/$name"
  cat > "$WORK/$name/kefu.toml" <<TOML
listen = "127.0.0.1:$port"
data = "$WORK/$name/data"
store = "$store"
knowledge = "$PWD/knowledge"
intents = "$PWD/intents"
watch_interval_ms = 0
admin_token_sha256 = "$ADMIN_HASH"
password_rounds = 1000
[limits]
ip_per_second = 1000000
ip_burst = 1000000
conversation_per_second = 1000000
conversation_burst = 1000000
connections_per_address = 1000000
TOML
  KEFU_LOG=warn taskset -c "$cpu" "$BIN/kefu" serve --config "$WORK/$name/kefu.toml" > "$WORK/$name/out" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && return; sleep 0.1; done
  echo "node $name did not become ready:"; cat "$WORK/$name/out"; exit 1
}

# conversations PORT FILE: 256 visitors started on the node at PORT.
conversations() {
  {
    echo "conversations = {"
    for _ in $(seq 1 256); do
      curl -s -XPOST "http://127.0.0.1:$1/api/v1/conversations" |
        python3 -c 'import json,sys; t=sys.stdin.read(); d=json.loads(t) if t.startswith("{") else {}
if "token" not in d: sys.exit("starting a conversation failed: " + t)
print("{id=\"%s\", token=\"%s\"}," % (d["id"], d["token"]))'
    done
    echo "}"
  } > "$2"
}

stop_nodes() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; PIDS=(); }

# One node on sled, then one on PostgreSQL: node on core 0, wrk on core 1 (PostgreSQL floats).
run_one() {
  local name=$1 store=$2 port
  port=$(free_port)
  start_node "$name" "$port" "$store" 0
  conversations "$port" "$WORK/$name.lua"
  KEFU_LOAD_CONVERSATIONS="$WORK/$name.lua" taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s scripts/load/message.lua "http://127.0.0.1:$port" > "$OUT/$name.txt"
  stop_nodes
}
run_one sled sled
PGURL="postgres://kefu@127.0.0.1:$PGPORT/postgres"
run_one postgres "$PGURL"

# Two nodes on the same database, one per core, each loaded by its own wrk with half the
# connections; both visitors' sets start on their own node.
PA=$(free_port); PB=$(free_port)
start_node two-a "$PA" "$PGURL" 0
start_node two-b "$PB" "$PGURL" 1
conversations "$PA" "$WORK/two-a.lua"
conversations "$PB" "$WORK/two-b.lua"
KEFU_LOAD_CONVERSATIONS="$WORK/two-a.lua" wrk -t1 -c$((CONNS / 2)) -d"${DURATION}s" --latency -s scripts/load/message.lua "http://127.0.0.1:$PA" > "$OUT/two-a.txt" &
W1=$!
KEFU_LOAD_CONVERSATIONS="$WORK/two-b.lua" wrk -t1 -c$((CONNS / 2)) -d"${DURATION}s" --latency -s scripts/load/message.lua "http://127.0.0.1:$PB" > "$OUT/two-b.txt" &
W2=$!
# Meanwhile, under that load: an agent's reply sent through B, timed to A's visitor socket.
"$BIN/examples/node_latency" "127.0.0.1:$PA" "127.0.0.1:$PB" "$ADMIN_TOKEN" 200 > "$OUT/latency.txt"
wait $W1 $W2
# Where the time goes: statements PostgreSQL ran per answered message in the last run.
XACTS=$(psql -h 127.0.0.1 -p "$PGPORT" -U kefu -d postgres -Atc "SELECT xact_commit FROM pg_stat_database WHERE datname = 'postgres'")
stop_nodes

python3 - "$OUT" "$DURATION" "$XACTS" <<'PY'
import re, sys
out, duration, xacts = sys.argv[1], float(sys.argv[2]), int(sys.argv[3] or 0)
def parse(name):
    t = open(f"{out}/{name}.txt").read()
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    lat = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", t, re.M))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    return rate, lat, int(bad.group(1)) if bad else 0
rows = [("one node, sled", [parse("sled")]), ("one node, PostgreSQL", [parse("postgres")]),
        ("two nodes, one PostgreSQL", [parse("two-a"), parse("two-b")])]
print("| setup | answered messages/s | p50 | p99 | non-2xx |")
print("|---|---|---|---|---|")
for name, parts in rows:
    rate = sum(p[0] for p in parts)
    p50 = " / ".join(p[1]["50"] for p in parts)
    p99 = " / ".join(p[1]["99"] for p in parts)
    print(f"| {name} | {rate:.0f} | {p50} | {p99} | {sum(p[2] for p in parts)} |")
print(f"\nPostgreSQL transactions committed in the PostgreSQL runs: {xacts}")
print(open(f"{out}/latency.txt").read().strip())
PY
