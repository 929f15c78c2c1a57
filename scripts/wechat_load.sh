#!/usr/bin/env bash
# Benchmark of the WeChat passive reply path: signed plaintext and safe-mode pushes of
# knowledge questions against a release `kefu serve` on loopback, beside the widget's HTTP
# message path at the same concurrency in the same run (examples/wechat_load.rs). The server
# and the load generator are pinned to different cores. Prints p50/p99/p99.9 and throughput.
#
#   scripts/wechat_load.sh [SECONDS_PER_PATH=15] [CONCURRENCY=8]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_PATH=${1:-15}
CONC=${2:-8}
PORT=${KEFU_LOAD_PORT:-18091}
cargo build --release --bin kefu --example wechat_load >/dev/null 2>&1 || cargo build --release --bin kefu --example wechat_load
NCPU=$(nproc)
SERVER_CPU=0; LOAD_CPU=$((NCPU > 1 ? 1 : 0))

WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
cat > "$WORK/kefu.toml" <<TOML
listen = "127.0.0.1:$PORT"
data = "$WORK/data"
knowledge = "$PWD/knowledge"
intents = "$PWD/intents"
watch_interval_ms = 0
[limits]
# One load generator on one address: the widget's per-IP and per-conversation limits would
# measure themselves, not the service (WeChat's path is exempt from the per-IP one anyway).
ip_per_second = 1000000
ip_burst = 1000000
conversation_per_second = 1000000
conversation_burst = 1000000

[[wechat]]
name = "load-plain"
token = "loadtoken"
appid = "wxloadplain"
secret = "unused"
# Nothing may leave the machine: the message API is pointed at a closed local port (the
# passive path measured here never calls it).
api_base = "http://127.0.0.1:9"

[[wechat]]
name = "load-safe"
token = "loadtoken"
appid = "wxloadsafe"
secret = "unused"
mode = "safe"
encoding_aes_key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
api_base = "http://127.0.0.1:9"
TOML
KEFU_LOG=warn taskset -c $SERVER_CPU target/release/kefu serve --config "$WORK/kefu.toml" > "$WORK/server.out" 2>&1 &
SERVER=$!
for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
taskset -c $LOAD_CPU target/release/examples/wechat_load "127.0.0.1:$PORT" "$SECONDS_PER_PATH" "$CONC"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
if grep -qiE "error|panic" "$WORK/server.out"; then echo "server log:"; grep -iE "error|panic" "$WORK/server.out" | head -5; fi
