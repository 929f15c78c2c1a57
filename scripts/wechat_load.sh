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
. scripts/load/server.sh
load_build wechat_load
# Two apps; nothing may leave the machine: the message API is pointed at a closed local port
# (the passive path measured here never calls it).
load_start_server "$PORT" '
[[wechat]]
name = "load-plain"
token = "loadtoken"
appid = "wxloadplain"
secret = "unused"
api_base = "http://127.0.0.1:9"

[[wechat]]
name = "load-safe"
token = "loadtoken"
appid = "wxloadsafe"
secret = "unused"
mode = "safe"
encoding_aes_key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
api_base = "http://127.0.0.1:9"
'
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
taskset -c $LOAD_CPU target/release/examples/wechat_load "127.0.0.1:$PORT" "$SECONDS_PER_PATH" "$CONC"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
if grep -qiE "error|panic" "$WORK/server.out"; then echo "server log:"; grep -iE "error|panic" "$WORK/server.out" | head -5; fi
