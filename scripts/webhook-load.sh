#!/usr/bin/env bash
# Webhook delivery under load, side by side in one run: 1,000 conversation starts a second
# (each a `conversation.started` event) and 200 answered visitor messages a second, with no
# endpoint ("off") and with a local receiver subscribed ("on"), alternating; prints each
# phase and the medians (examples/webhook_load.rs). The server and the load generator (with
# the receiver) are pinned to different cores.
#
#   scripts/webhook-load.sh [PHASE_SECONDS=15] [ROUNDS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-15}
ROUNDS=${2:-3}
PORT=${KEFU_LOAD_PORT:-18094}
. scripts/load/server.sh
load_build webhook_load
load_start_server "$PORT"
ADMIN=$(cat "$WORK/data/admin-token")
taskset -c $LOAD_CPU target/release/examples/webhook_load "127.0.0.1:$PORT" "$ADMIN" "$SECS" "$ROUNDS"
