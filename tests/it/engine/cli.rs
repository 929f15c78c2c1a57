//! The `kefu` binary: import, ask, ask --batch, eval, and its errors.

use serde_json::Value;

use crate::fixture::{imported, kefu, path_str, run, stderr, stdout, write};

#[test]
fn import_then_ask_prints_action_confidence_and_candidates() {
    let data = imported();
    let out = run(&["ask", "--data", path_str(data.path()), "退貨運費誰承擔？"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("action:     answer\n"), "{text}");
    let confidence =
        text.lines().nth(1).and_then(|l| l.strip_prefix("confidence: ")).expect("a confidence line");
    assert!((0.0..=1.0).contains(&confidence.trim().parse::<f64>().unwrap()), "{text}");
    assert!(text.contains("answer:     [return-shipping-fee] 退货运费谁承担？"), "{text}");
    let candidates = text.split("candidates:\n").nth(1).expect("a candidates section");
    assert!(candidates.starts_with("  1. return-shipping-fee"), "{text}");
    assert!(candidates.lines().count() <= 5, "{text}");
}

#[test]
fn ask_without_an_answer_still_lists_candidates() {
    let data = imported();
    let out = run(&["ask", "--data", path_str(data.path()), "明天北京天气怎么样"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.starts_with("action:     answer"), "{text}");
    assert!(!text.contains("\nanswer:"), "{text}");
    assert!(text.contains("\nconfidence: "), "{text}");
    assert!(text.contains("\ncandidates:"), "{text}");
}

#[test]
fn batch_prints_one_json_line_per_query_in_input_order() {
    let data = imported();
    let dir = tempfile::tempdir().unwrap();
    let queries = [
        "退货运费谁承担？",
        "發票要怎麼開？",
        "ＡＰＰ上怎么申请退货",
        "退 款 到 账 要几天啊😭",
        "明天北京天气怎么样",
        "",
        "？？？",
        "asdf",
    ];
    let mut input = String::new();
    for (i, q) in queries.iter().enumerate() {
        // Labels are allowed (and ignored); blank lines are skipped.
        let line = if i % 2 == 0 {
            serde_json::json!({ "query": q })
        } else {
            serde_json::json!({ "query": q, "expected": null })
        };
        input.push_str(&line.to_string());
        input.push_str("\n\n");
    }
    let file = write(dir.path(), "queries.jsonl", &input);
    let out = run(&["ask", "--data", path_str(data.path()), "--batch", path_str(&file)]);
    assert!(out.status.success(), "{}", stderr(&out));

    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), queries.len(), "{text}");
    for (line, query) in lines.iter().zip(queries) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let obj = v.as_object().expect("each line is an object");
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["action", "answer_id", "candidates", "confidence", "query"], "{line}");
        assert_eq!(obj["query"], query, "{line}");

        let candidates = obj["candidates"].as_array().expect("candidates is an array");
        assert!(candidates.len() <= 10, "{line}");
        assert!(candidates.iter().all(Value::is_string), "{line}");
        let action = obj["action"].as_str().expect("action is a string");
        assert!(["answer", "clarify", "none"].contains(&action), "{line}");
        let confidence = obj["confidence"].as_f64().expect("confidence is a number");
        assert!((0.0..=1.0).contains(&confidence), "{line}");
        match &obj["answer_id"] {
            Value::Null => assert_ne!(action, "answer", "{line}"),
            Value::String(id) => {
                assert_eq!(action, "answer", "{line}");
                assert_eq!(
                    Some(id),
                    candidates.first().and_then(Value::as_str).map(str::to_string).as_ref(),
                    "{line}"
                );
            }
            other => panic!("answer_id is {other}: {line}"),
        }
    }
    let first: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(first["answer_id"], "return-shipping-fee", "{}", lines[0]);
    for blank in &lines[5..7] {
        let v: Value = serde_json::from_str(blank).unwrap();
        assert_eq!(v["action"], "none", "{blank}");
        assert_eq!(v["candidates"], serde_json::json!([]), "{blank}");
        assert_eq!(v["answer_id"], Value::Null, "{blank}");
    }
}

#[test]
fn eval_prints_the_metrics() {
    let data = imported();
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "labelled.jsonl",
        "{\"query\": \"退货运费谁承担\", \"expected\": \"return-shipping-fee\"}\n\
         {\"query\": \"明天北京天气怎么样\", \"expected\": null}\n",
    );
    let out = run(&["eval", "--data", path_str(data.path()), "--queries", path_str(&file)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let metrics: Value = serde_json::from_str(stdout(&out).trim()).expect("eval prints one JSON object");
    for key in [
        "queries",
        "hit@1",
        "hit@5",
        "mrr@10",
        "auto_resolved",
        "answer_precision",
        "wrong_answer_rate",
        "unanswerable_declined",
        "clarified",
        "clarify_useful",
    ] {
        assert!(metrics.get(key).is_some_and(Value::is_number), "no `{key}` in {metrics}");
    }
    assert_eq!(metrics["queries"], 2);
    assert_eq!(metrics["hit@1"], 1.0);
    assert_eq!(metrics["unanswerable_declined"], 1.0);
}

#[test]
fn thresholds_from_flags_and_environment() {
    let data = imported();
    let d = path_str(data.path());
    let ask = |extra: &[&str], env: &[(&str, &str)]| {
        let mut cmd = kefu();
        cmd.args(["ask", "--data", d]).args(extra).arg("退货运费谁承担？");
        cmd.envs(env.iter().copied());
        cmd.output().unwrap()
    };
    let first_line = |out: &std::process::Output| stdout(out).lines().next().unwrap_or_default().to_string();

    assert_eq!(first_line(&ask(&[], &[])), "action:     answer");
    let strict = ask(&["--answer-threshold", "1", "--clarify-threshold", "0"], &[]);
    assert_eq!(first_line(&strict), "action:     clarify", "{}", stderr(&strict));
    let strict = ask(&[], &[("KEFU_ANSWER_THRESHOLD", "1"), ("KEFU_CLARIFY_THRESHOLD", "1")]);
    assert_eq!(first_line(&strict), "action:     none", "{}", stderr(&strict));

    let inverted = ask(&["--answer-threshold", "0.2", "--clarify-threshold", "0.5"], &[]);
    assert!(!inverted.status.success());
    assert!(
        stderr(&inverted).starts_with("error: the clarify threshold 0.5 is above the answer threshold 0.2"),
        "{}",
        stderr(&inverted)
    );
}

/// Asserts a failed run: non-zero exit and an `error:` line containing every one of `needles`.
#[track_caller]
fn assert_error(out: &std::process::Output, needles: &[&str]) {
    assert!(!out.status.success(), "should fail; stdout: {}", stdout(out));
    let err = stderr(out);
    // The error and its indented details, from the `error:` line on.
    let at = err.find("error: ").filter(|&i| i == 0 || err[..i].ends_with('\n'));
    let error = &err[at.unwrap_or_else(|| panic!("no `error:` line in:\n{err}"))..];
    for needle in needles {
        assert!(error.contains(needle), "{needle:?} not in:\n{err}");
    }
}

#[test]
fn ask_on_a_data_directory_never_imported() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("never-imported");
    let out = run(&["ask", "--data", path_str(&missing), "退款"]);
    assert_error(&out, &["no knowledge has been imported into", path_str(&missing), "kefu import"]);
}

#[test]
fn ask_with_a_missing_batch_file() {
    let data = imported();
    let missing = data.path().join("no-such-queries.jsonl");
    let out = run(&["ask", "--data", path_str(data.path()), "--batch", path_str(&missing)]);
    assert_error(&out, &["cannot read", path_str(&missing)]);
    assert!(stdout(&out).is_empty());
}

#[test]
fn ask_with_a_malformed_batch_line() {
    let data = imported();
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "queries.jsonl", "{\"query\": \"退款\"}\nnot json\n{\"query\": \"退货\"}\n");
    let out = run(&["ask", "--data", path_str(data.path()), "--batch", path_str(&file)]);
    assert_error(&out, &[&format!("{}:2: malformed query line", file.display())]);
    assert!(stdout(&out).is_empty(), "no partial output: {}", stdout(&out));
}

#[test]
fn import_of_bad_knowledge_fails_and_keeps_the_old_index() {
    let data = imported();
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "bad.md", "+++\nid = \"bad\"\ntitle = \"怎么退货\"\n");
    let out = run(&["import", "--from", path_str(dir.path()), "--data", path_str(data.path())]);
    assert_error(&out, &[&format!("{}:1: front matter is not closed", bad.display())]);

    let out = run(&["ask", "--data", path_str(data.path()), "退货运费谁承担？"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("[return-shipping-fee]"), "{}", stdout(&out));
}

#[test]
fn import_of_an_unknown_format_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "faq.txt", "怎么退款\n");
    let data = dir.path().join("data");
    let out = run(&["import", "--from", path_str(&file), "--data", path_str(&data)]);
    assert_error(&out, &[path_str(&file), "unknown knowledge format"]);
}
