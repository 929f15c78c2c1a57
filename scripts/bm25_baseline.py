# The Python baseline kefu's speed is compared with: jieba segmentation + bm25s retrieval.
#
#   bm25_baseline.py index KB.jsonl INDEX_DIR      tokenise every question, build and save the index
#   bm25_baseline.py ask INDEX_DIR QUERIES.jsonl   load it, answer each {"query"} line on stdout
#
# `index` is the counterpart of `kefu import`, `ask` of `kefu ask --batch`: a fresh process
# that loads the saved index and jieba, tokenises the queries and retrieves the top 10
# articles of each, writing kefu's batch shape ({"query","candidates","answer_id","action",
# "confidence"}). One BM25 document per question (like kefu's index); an article scores by
# its best question. The answer / clarify / none rule is a simple score heuristic: this
# baseline is here for speed, its quality is only a sanity check.
import json
import os
import re
import sys
import time

# A question of kefu's synthetic set has at most 4 paraphrases; 3 documents per wanted
# article (as kefu does) leave room for an article's several questions in the top hits.
TOP_ARTICLES = 10
TOP_DOCS = 30
# Retrieval threads: kefu's `ask --batch` uses every core, so the baseline may too.
THREADS = int(os.environ.get("BM25_THREADS", "-1"))

PUNCT = re.compile(r"[^\w]+")


def tokenize(jieba, text):
    # Lower case and punctuation to spaces, as kefu's normaliser does (minus OpenCC / NFKC).
    text = PUNCT.sub(" ", text.lower())
    return [w for w in jieba.lcut(text) if w.strip()]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def index(kb_path, out_dir):
    import jieba
    import bm25s

    jieba.setLogLevel(60)
    started = time.perf_counter()
    docs, owners = [], []
    with open(kb_path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            a = json.loads(line)
            for q in [a["question"], *a.get("similar_questions", [])]:
                docs.append(tokenize(jieba, q))
                owners.append(a["id"])
    tokenised = time.perf_counter()
    retriever = bm25s.BM25()
    retriever.index(docs, show_progress=False)
    retriever.save(out_dir)
    with open(os.path.join(out_dir, "owners.json"), "w", encoding="utf-8") as f:
        json.dump(owners, f, ensure_ascii=False)
    log(
        f"indexed {len(docs)} questions: tokenise {tokenised - started:.2f} s, "
        f"index + save {time.perf_counter() - tokenised:.2f} s"
    )


def ask(index_dir, queries_path):
    import numpy as np
    import jieba
    import bm25s

    jieba.setLogLevel(60)
    started = time.perf_counter()
    retriever = bm25s.BM25.load(index_dir)
    with open(os.path.join(index_dir, "owners.json"), encoding="utf-8") as f:
        owners = json.load(f)
    jieba.initialize()  # loads the dictionary now rather than on the first query
    loaded = time.perf_counter()

    queries = []
    with open(queries_path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                queries.append(json.loads(line)["query"])
    tokens = [tokenize(jieba, q) for q in queries]
    tokenised = time.perf_counter()

    # Queries with no indexed word have no candidates; bm25s cannot take them (its empty
    # token is in the vocabulary but not in the score matrix), so they skip retrieval.
    known = [[t for t in ts if t in retriever.vocab_dict and t != ""] for ts in tokens]
    asked = [i for i, ts in enumerate(known) if ts]
    docs = [[] for _ in queries]
    scores = [[] for _ in queries]
    if asked:
        found, found_scores = retriever.retrieve(
            [known[i] for i in asked], k=TOP_DOCS, show_progress=False, n_threads=THREADS
        )
        for i, row, score_row in zip(asked, found.tolist(), found_scores.tolist()):
            docs[i], scores[i] = row, score_row
    retrieved = time.perf_counter()

    out = sys.stdout
    for q, doc_row, score_row in zip(queries, docs, scores):
        candidates, best = [], []
        for d, s in zip(doc_row, score_row):
            if s <= 0:
                break
            owner = owners[d]
            if owner not in candidates:
                candidates.append(owner)
                best.append(s)
                if len(candidates) == TOP_ARTICLES:
                    break
        if not candidates:
            confidence, action = 0.0, "none"
        else:
            # Share of the top score against the runner-up, damped for weak matches.
            runner_up = best[1] if len(best) > 1 else 0.0
            confidence = (best[0] / (best[0] + runner_up)) * (1 - np.exp(-best[0] / 8))
            # Thresholds read off the synthetic queries' confidence histogram (~94 %
            # precision): optimistic for the baseline's quality, irrelevant to its speed.
            action = "answer" if confidence >= 0.35 else "clarify" if confidence >= 0.25 else "none"
        line = {
            "query": q,
            "candidates": candidates,
            "answer_id": candidates[0] if action == "answer" else None,
            "action": action,
            "confidence": round(float(confidence), 4),
        }
        out.write(json.dumps(line, ensure_ascii=False))
        out.write("\n")
    out.flush()
    log(
        f"{len(queries)} queries: load index + jieba {loaded - started:.2f} s, tokenise {tokenised - loaded:.2f} s, "
        f"retrieve {retrieved - tokenised:.2f} s, write {time.perf_counter() - retrieved:.2f} s"
    )


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("index", "ask"):
        sys.exit("usage: bm25_baseline.py index KB.jsonl INDEX_DIR | ask INDEX_DIR QUERIES.jsonl")
    if sys.argv[1] == "index":
        index(sys.argv[2], sys.argv[3])
    else:
        ask(sys.argv[2], sys.argv[3])
