#!/usr/bin/env bash
# Load benchmark of the conversation service on this machine: answered visitor messages per
# second and latency, beside /healthz on the same server in the same run, and the memory
# 1,000 open visitor WebSockets cost. The server and the load generator are pinned to
# different cores. Installs wrk from Debian if it is missing (needs root or sudo).
#
#   scripts/load.sh [DURATION_SECONDS=20] [CONNECTIONS=32]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-20}
CONNS=${2:-32}
PORT=${KEFU_LOAD_PORT:-18090}
OUT=target/load
mkdir -p "$OUT"

if ! command -v wrk >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk
fi
. scripts/load/server.sh
load_build ws_hold
load_start_server "$PORT"

# 256 visitors, each with a conversation and a token.
{
  echo "conversations = {"
  for _ in $(seq 1 256); do
    curl -sf -XPOST "http://127.0.0.1:$PORT/api/v1/conversations" |
      python3 -c 'import json,sys; d=json.load(sys.stdin); print("{id=\"%s\", token=\"%s\"}," % (d["id"], d["token"]))'
  done
  echo "}"
} > "$WORK/conversations.lua"
export KEFU_LOAD_CONVERSATIONS="$WORK/conversations.lua"

rss() { awk '/VmRSS/ {print $2}' /proc/$SERVER/status; }
# WebSockets first, on a fresh heap: after the load runs, freed memory would be reused and
# hide their cost.
taskset -c $LOAD_CPU target/release/examples/ws_hold "127.0.0.1:$PORT" 1000 $SERVER > "$OUT/ws.txt"
cat "$OUT/ws.txt"
echo "server RSS before load: $(rss) KiB"
taskset -c $LOAD_CPU wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$PORT/healthz" > "$OUT/healthz.txt"
taskset -c $LOAD_CPU wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s scripts/load/message.lua "http://127.0.0.1:$PORT" > "$OUT/messages.txt"
echo "server RSS after load: $(rss) KiB"

# Check that the messages were answered, not just accepted.
ANSWERED=$(curl -sf "http://127.0.0.1:$PORT/metrics" | awk '/^kefu_bot_replies_total/ {print $2}')


python3 - "$OUT" "$DURATION" "$ANSWERED" <<'PY'
import re, sys
out, duration, answered = sys.argv[1], float(sys.argv[2]), int(sys.argv[3] or 0)
def parse(path):
    t = open(path).read()
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    lat = {p: m for p, m in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", t, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    sock = re.search(r"Socket errors: (.*)", t)
    return rate, lat, int(errors.group(1)) if errors else 0, sock.group(1) if sock else "none"
h = parse(f"{out}/healthz.txt"); m = parse(f"{out}/messages.txt")
print()
print("| endpoint | requests/s | p50 | p99 | non-2xx | socket errors |")
print("|---|---|---|---|---|---|")
print(f"| GET /healthz | {h[0]:.0f} | {h[1]['50']} | {h[1]['99']} | {h[2]} | {h[3]} |")
print(f"| POST message (answered) | {m[0]:.0f} | {m[1]['50']} | {m[1]['99']} | {m[2]} | {m[3]} |")
print(f"\nmessages/s ÷ healthz/s = {m[0]/h[0]:.3f}; bot replies stored during the run: {answered}")
PY
