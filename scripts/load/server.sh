# Sourced by the load scripts (scripts/load.sh, scripts/wechat_load.sh): builds the release
# binaries, picks the cores, and starts `kefu serve` pinned to its core with the shipped
# knowledge and the per-IP, per-conversation and per-address connection limits lifted (one
# load generator on one address would measure the limits, not the service).
#
#   load_build EXAMPLE...        cargo build --release --bin kefu --example EXAMPLE...
#   load_start_server PORT [EXTRA_TOML]   sets WORK, SERVER (pid), SERVER_CPU, LOAD_CPU

load_build() {
  local args=(--release --bin kefu)
  for e in "$@"; do args+=(--example "$e"); done
  cargo build "${args[@]}" >/dev/null 2>&1 || cargo build "${args[@]}"
}

load_start_server() {
  local port=$1 extra=${2:-}
  local ncpu
  ncpu=$(nproc)
  SERVER_CPU=0; LOAD_CPU=$((ncpu > 1 ? 1 : 0))
  WORK=$(mktemp -d)
  trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
  cat > "$WORK/kefu.toml" <<TOML
listen = "127.0.0.1:$port"
data = "$WORK/data"
knowledge = "$PWD/knowledge"
intents = "$PWD/intents"
watch_interval_ms = 0
[limits]
ip_per_second = 1000000
ip_burst = 1000000
conversation_per_second = 1000000
conversation_burst = 1000000
connections_per_address = 1000000
$extra
TOML
  KEFU_LOG=warn taskset -c $SERVER_CPU target/release/kefu serve --config "$WORK/kefu.toml" > "$WORK/server.out" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
}
