#!/usr/bin/env bash
# The reliability report in one command: builds the release binary and the driver once, runs
# every phase against real `kefu` processes (kill -9 cycles, kills during import and reload,
# a full disk, ordering, a soak, overload, an idle-connection flood, webhooks across kills)
# and the bad-input tests,
# then prints one table.
#
#   scripts/reliability.sh           # the full run (~10 minutes on 2 cores)
#   scripts/reliability.sh --short   # CI: the same phases, smaller (≤ 2 minutes after the build)
#   scripts/reliability.sh --short --debug   # CI after `cargo test`: reuses the debug build
#                                            # it made instead of a release build from scratch
#
# The server is pinned to CPU 0 and the load to CPU 1 (`taskset`) when there are two CPUs.
# Details of each phase go to $WORK/<phase>.log; the exit status is non-zero if anything
# did not hold. Needs root for the disk-full phase (mount -t tmpfs); otherwise it says
# "skipped".
set -u
cd "$(dirname "$0")/.."

short=0 profile=release
for arg in "$@"; do
    case $arg in
    --short) short=1 ;;
    --debug) profile=debug ;;
    *) echo "usage: $0 [--short] [--debug]" >&2; exit 2 ;;
    esac
done

target=${CARGO_TARGET_DIR:-target}
if [ $profile = release ]; then
    cargo build --release --bin kefu --example reliability || exit 1
else
    cargo build --bin kefu --example reliability || exit 1
fi
kefu="$target/$profile/kefu"
driver="$target/$profile/examples/reliability"
work="$target/reliability"
rm -rf "$work"
mkdir -p "$work"
rows="$work/rows.tsv"
: >"$rows"

if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    server_cpu=0
    pin=(taskset -c 1)
else
    server_cpu=0
    pin=()
fi

if [ $short = 1 ]; then
    kill_cycles=10 import_kills=3 reload_kills=3 soak_secs=15 overload_secs=5 overload_clients=500 idle_secs=8 node_cycles=5 webhook_cycles=6
else
    kill_cycles=100 import_kills=20 reload_kills=10 soak_secs=120 overload_secs=10 overload_clients=1000 idle_secs=20 node_cycles=20 webhook_cycles=20
fi

failed=0
phase() {
    local name=$1
    shift
    echo "== $name: $*" >&2
    local start=$SECONDS
    "${pin[@]}" "$driver" --bin "$kefu" --work "$work" --repo . "$@" 2>"$work/$name.log" | grep '^ROW' | cut -f2- >>"$rows"
    local status=${PIPESTATUS[0]}
    [ "$status" = 0 ] || failed=1
    echo "   $((SECONDS - start)) s, exit $status, details in $work/$name.log" >&2
}

phase kill kill --cycles $kill_cycles
phase import-kill import-kill --cycles $import_kills
phase reload-kill reload-kill --cycles $reload_kills
phase disk-full disk-full
phase order order
phase soak soak --secs $soak_secs --server-cpu $server_cpu
phase overload overload --secs $overload_secs --clients $overload_clients --server-cpu $server_cpu
phase idle-flood idle-flood --secs $idle_secs
phase webhooks webhooks --cycles $webhook_cycles

# Two nodes on one PostgreSQL database: a throwaway cluster on a free port (as the postgres
# user when root: PostgreSQL refuses to run as root).
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -n "$pgbin" ]; then
    pgdir=$(mktemp -d)
    as_pg=()
    if [ "$(id -u)" = 0 ]; then chown postgres "$pgdir"; as_pg=(runuser -u postgres --); fi
    pgport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    "${as_pg[@]}" "$pgbin/initdb" -D "$pgdir/data" -U kefu --auth=trust -E UTF8 --no-locale >/dev/null
    "${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" -o "-p $pgport -k $pgdir -c listen_addresses=127.0.0.1" -l "$pgdir/log" -w start >/dev/null
    phase nodes nodes --cycles $node_cycles --store "postgres://kefu@127.0.0.1:$pgport/postgres"
    "${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" -m fast -w stop >/dev/null
    rm -rf "$pgdir"
else
    printf 'two nodes on PostgreSQL, kill -9 of one\t-\t-\tNO: PostgreSQL is not installed (scripts/test installs it)\t?\n' >>"$rows"
    failed=1
fi

# Bad input and security checks are tests: property tests of every parser, and hostile
# requests against a real server.
tests() {
    local name=$1 what=$2
    shift 2
    echo "== $name: cargo test $*" >&2
    if cargo test "$@" >"$work/$name.log" 2>&1; then
        local n
        n=$(grep -o 'test result: ok. [0-9]* passed' "$work/$name.log" | awk '{s += $4} END {print s}')
        printf '%s\t%s\t%s tests\tyes: all pass\t0\n' "$name" "$what" "$n" >>"$rows"
    else
        failed=1
        printf '%s\t%s\t-\tNO: see %s\t?\n' "$name" "$what" "$work/$name.log" >>"$rows"
    fi
}
tests "bad input (proptest)" "analyser, lexicon, Markdown/JSONL/CSV loaders, intents, arbitrary bytes on disk: no panic, errors name file:line" --test it props::
tests "WeChat requests" "forged signatures, stale timestamps, wrong appid, replayed MsgIds, malformed XML, DTDs and entity expansion, huge bodies; property tests of the XML/JSON parsers, signature check and AES decryption" --test it wechat
tests "hostile requests" "invalid UTF-8, control chars, 10 MB bodies, nested JSON, non-objects, header and token tampering, other visitors' ids, slowloris, every agent/admin route without a token, secrets in debug logs; idle and half-sent connections (HTTP/1, h2c), per-address connections, ulimit -n 256, oversize Content-Length, login throttling, weak passwords, trusted proxies, name/page/socket/metrics limits, paths in errors" --test it hostile::

echo
echo "| phase | what was tried | how much | what held | data lost |"
echo "|---|---|---|---|---|"
while IFS=$'\t' read -r name tried amount held lost; do
    echo "| $name | $tried | $amount | $held | $lost |"
done <"$rows"
echo
[ $failed = 0 ] && echo "all phases held" || echo "SOME PHASES DID NOT HOLD (see the logs in $work)"
exit $failed
