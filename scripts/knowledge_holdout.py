#!/usr/bin/env python3
"""Makes a customer-service training set from the shipped knowledge/ folder.

The ranker is trained on the general-domain development benchmark and on this: for each
article some similar questions are held out as queries (expected: that article), and a
share of whole articles is held out so that their questions become queries the remaining
knowledge base cannot answer (expected: null). Deterministic for a given seed.

usage: knowledge_holdout.py KNOWLEDGE_DIR OUT_FAQ.jsonl OUT_QUERIES.jsonl [--seed N]
"""
import json, pathlib, random, sys, tomllib


def articles(root):
    for path in sorted(pathlib.Path(root).rglob("*.md")):
        if path.name.lower() == "readme.md":
            continue
        text = path.read_text(encoding="utf-8")
        _, front, body = text.split("+++", 2)
        meta = tomllib.loads(front)
        category = meta.get("category") or str(path.parent.relative_to(root))
        yield meta, body.strip(), category


def main():
    args = sys.argv[1:]
    seed = 7
    if "--seed" in args:
        i = args.index("--seed")
        seed = int(args[i + 1])
        del args[i:i + 2]
    root, faq_out, queries_out = args
    rng = random.Random(seed)
    faq, queries = [], []
    for meta, body, category in articles(root):
        questions = [meta["title"]] + list(meta.get("similar", []))
        if rng.random() < 0.2:
            queries += [{"query": q, "expected": None} for q in questions]
            continue
        similar = list(meta.get("similar", []))
        rng.shuffle(similar)
        held = similar[: max(1, len(similar) // 3)]
        kept = [q for q in meta.get("similar", []) if q not in held]
        queries += [{"query": q, "expected": meta["id"]} for q in held]
        faq.append({"id": meta["id"], "question": meta["title"], "similar_questions": kept,
                    "answer": body, "category": category, "tags": meta.get("tags", [])})
    with open(faq_out, "w", encoding="utf-8") as f:
        for e in faq:
            f.write(json.dumps(e, ensure_ascii=False) + "\n")
    with open(queries_out, "w", encoding="utf-8") as f:
        for q in queries:
            f.write(json.dumps(q, ensure_ascii=False) + "\n")
    print(f"{len(faq)} articles kept, {len(queries)} queries "
          f"({sum(q['expected'] is None for q in queries)} unanswerable)", file=sys.stderr)


if __name__ == "__main__":
    main()
