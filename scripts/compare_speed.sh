#!/usr/bin/env bash
# Speed of kefu end to end against a jieba + bm25s Python baseline, on the synthetic
# 100k-article knowledge base (examples/synth_kb.rs) and 6k queries.
#
#   scripts/compare_speed.sh            # everything; results in target/speed/
#
# Measures (a) `kefu import` time and peak memory, (b) `kefu ask --batch` with the semantic
# table (models/e5-static.kfv, from scripts/model) and with --no-model, and (c) the Python
# baseline (scripts/bm25_baseline.py: `index` then a fresh `ask` process), each of
# (b) and (c) RUNS times alternating, with wall time and peak RSS from /usr/bin/time -v.
# Prints a table of medians, the Python/kefu ratio, the targets, and a quality sanity check
# of both outputs with the benchmark scorer.
# Environment: ARTICLES (100000), QUERIES (6000), RUNS (3), SEED (42), WORK (target/speed),
# SCORER (/work/shared/bench/score.py); CARGO_TARGET_DIR is honoured (binaries, WORK and the
# Python venv then live there).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
ARTICLES=${ARTICLES:-100000}
QUERIES=${QUERIES:-6000}
RUNS=${RUNS:-3}
SEED=${SEED:-42}
WORK=${WORK:-$TARGET/speed}
SCORER=${SCORER:-/work/shared/bench/score.py}
VENV=$TARGET/speed-venv
KB=$WORK/kb.jsonl
QS=$WORK/queries.jsonl

mkdir -p "$WORK"
log() { printf '\n== %s\n' "$*" >&2; }

log "building release binaries"
cargo build --release --bin kefu --example synth_kb
# The target directory is shared: another build may replace target/release/kefu while this
# script runs. Measure a private copy so every run times the same binary.
cp "$TARGET/release/kefu" "$WORK/kefu"
KEFU=$WORK/kefu

if [ ! -x /usr/bin/time ]; then
    log "installing GNU time (for peak RSS)"
    apt-get install -y time >/dev/null
fi

if ! "$VENV/bin/python" -c 'import jieba, bm25s' 2>/dev/null; then
    log "installing jieba and bm25s into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet jieba bm25s
fi
PY=$VENV/bin/python

log "generating $ARTICLES articles and $QUERIES queries (seed $SEED)"
"$TARGET/release/examples/synth_kb" --articles "$ARTICLES" --queries "$QUERIES" --seed "$SEED" \
    --out-kb "$KB" --out-queries "$QS"

# Runs a command under /usr/bin/time -v; its report goes to $1, stdout to $2.
timed() {
    local report=$1 out=$2
    shift 2
    /usr/bin/time -v -o "$report" "$@" >"$out"
}

log "(a) kefu import"
rm -rf "$WORK/data"
timed "$WORK/kefu-import.time" /dev/null "$KEFU" import --from "$KB" --data "$WORK/data"

log "(c) baseline index (the counterpart of import)"
rm -rf "$WORK/bm25"
mkdir -p "$WORK/bm25"
timed "$WORK/py-index.time" /dev/null "$PY" scripts/bm25_baseline.py index "$KB" "$WORK/bm25"

# Alternating runs, so drift in the shared machine's load hits both sides alike.
for i in $(seq 1 "$RUNS"); do
    log "run $i/$RUNS: (b) kefu ask --batch (semantic table), then --no-model"
    timed "$WORK/kefu-ask-$i.time" "$WORK/kefu-results.jsonl" "$KEFU" ask --data "$WORK/data" --batch "$QS"
    timed "$WORK/kefu-words-$i.time" "$WORK/kefu-words-results.jsonl" "$KEFU" ask --no-model --data "$WORK/data" --batch "$QS"
    log "run $i/$RUNS: (c) baseline ask"
    timed "$WORK/py-ask-$i.time" "$WORK/py-results.jsonl" "$PY" scripts/bm25_baseline.py ask "$WORK/bm25" "$QS"
done

log "results (load average while measuring: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores)"
# Which code was measured: the commit plus a fingerprint of uncommitted changes.
echo "source: $(git rev-parse --short HEAD 2>/dev/null || echo '?') + uncommitted diff $(git diff HEAD -- src Cargo.toml 2>/dev/null | sha1sum | cut -c1-12)" >&2
python3 - "$WORK" "$RUNS" <<'EOF'
import re, statistics, sys

work, runs = sys.argv[1], int(sys.argv[2])

def parse(path):
    text = open(path).read()
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text).group(1)
    seconds = 0.0
    for part in wall.split(":"):
        seconds = seconds * 60 + float(part)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) / 1024
    cpu = float(re.search(r"User time \(seconds\): (\S+)", text).group(1))
    cpu += float(re.search(r"System time \(seconds\): (\S+)", text).group(1))
    return seconds, rss, cpu

def row(name, files):
    got = [parse(f) for f in files]
    wall = statistics.median(g[0] for g in got)
    rss = statistics.median(g[1] for g in got)
    cpu = statistics.median(g[2] for g in got)
    runs = " ".join(f"{g[0]:.2f}" for g in got)
    print(f"{name:<28} {wall:>9.2f} {cpu:>9.2f} {rss:>10.0f}   {runs}")
    return wall, rss, cpu

# CPU seconds (user + sys) are printed beside wall time: on a shared, loaded machine they
# are the steadier measure of work done.
print(f"{'(medians)':<28} {'wall s':>9} {'CPU s':>9} {'peak MB':>10}   wall of each run (s)")
imp, imp_rss, imp_cpu = row("kefu import", [f"{work}/kefu-import.time"])
pyi, _, pyi_cpu = row("python index", [f"{work}/py-index.time"])
ask, ask_rss, ask_cpu = row("kefu ask --batch", [f"{work}/kefu-ask-{i}.time" for i in range(1, runs + 1)])
wask, wask_rss, wask_cpu = row("kefu ask --batch --no-model", [f"{work}/kefu-words-{i}.time" for i in range(1, runs + 1)])
pya, _, pya_cpu = row("python ask (jieba+bm25s)", [f"{work}/py-ask-{i}.time" for i in range(1, runs + 1)])
print()
print(f"ratio python/kefu, ask end to end: wall {pya / ask:.2f}x, CPU {pya_cpu / ask_cpu:.2f}x   (target >= 5x wall: {'met' if pya / ask >= 5 else 'MISSED'})")
print(f"ratio python/kefu, index/import:   wall {pyi / imp:.2f}x, CPU {pyi_cpu / imp_cpu:.2f}x")
print(f"ratio python/kefu --no-model, ask:  wall {pya / wask:.2f}x, CPU {pya_cpu / wask_cpu:.2f}x; semantic/words wall {ask / wask:.2f}x")
print(f"kefu ask peak RSS {ask_rss:.0f} MB with the table (target <= 600 MB: {'met' if ask_rss <= 600 else 'MISSED'}), {wask_rss:.0f} MB without")
print(f"kefu import {imp:.2f} s (target <= 15 s: {'met' if imp <= 15 else 'MISSED'}); peak RSS {imp_rss:.0f} MB")
EOF

if [ -f "$SCORER" ]; then
    log "quality sanity check on the synthetic queries ($SCORER)"
    printf 'kefu:   '; python3 "$SCORER" "$QS" "$WORK/kefu-results.jsonl"
    printf 'kefu --no-model: '; python3 "$SCORER" "$QS" "$WORK/kefu-words-results.jsonl"
    printf 'python: '; python3 "$SCORER" "$QS" "$WORK/py-results.jsonl"
else
    log "scorer $SCORER not found: skipping the quality check"
fi
