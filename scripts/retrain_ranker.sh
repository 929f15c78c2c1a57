#!/usr/bin/env bash
# Retrains the shipped ranker (src/knowledge/ranker.toml) from the pooled training sets:
#   1. the development benchmark (../shared/bench/lcqmc-dev), general-domain questions;
#   2. three hold-outs of the shipped knowledge/ (scripts/knowledge_holdout.py, seeds 1-3):
#      customer-service paraphrases against many-question articles;
#   3. every fourth development query asked against the shipped knowledge base, labelled
#      "no answer": off-topic questions must not be answered by an e-commerce knowledge base.
# Then rebuild (`cargo build --release`) so the binary embeds the new model.
# usage: scripts/retrain_ranker.sh [OUT.toml]   (default: print the model on stdout)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bench=../shared/bench/lcqmc-dev
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release --quiet
kefu=target/release/kefu

"$kefu" import --from "$bench/faq.jsonl" --data "$work/lcqmc" 2>/dev/null
"$kefu" import --from knowledge --data "$work/demo" 2>/dev/null
args=(--data "$work/lcqmc" --queries "$bench/queries.jsonl")
for seed in 1 2 3; do
    python3 scripts/knowledge_holdout.py knowledge "$work/h$seed.faq.jsonl" "$work/h$seed.queries.jsonl" --seed "$seed"
    "$kefu" import --from "$work/h$seed.faq.jsonl" --data "$work/h$seed" 2>/dev/null
    args+=(--data "$work/h$seed" --queries "$work/h$seed.queries.jsonl")
done
python3 - "$bench/queries.jsonl" > "$work/offtopic.jsonl" <<'PY'
import json, sys
for i, line in enumerate(open(sys.argv[1], encoding="utf-8")):
    if i % 4 == 0:
        print(json.dumps({"query": json.loads(line)["query"], "expected": None}, ensure_ascii=False))
PY
args+=(--data "$work/demo" --queries "$work/offtopic.jsonl")
"$kefu" train "${args[@]}" ${1:+--out "$1"}
