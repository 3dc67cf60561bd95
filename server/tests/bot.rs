//! The bot's engines against local fakes: a webhook service that checks the signature, an
//! OpenAI-compatible chat endpoint, and the `kefu bot` command line on a tiny corpus.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::serve;
use kefu_server::bot::webhook::{SIGNATURE_HEADER, WebhookEngine, verify};
use kefu_server::bot::{
    BotContext, BotEngine, HandoffWords, Intent, LlmSettings, RetrievalEngine, Secret,
    WebhookSettings, corpus, llm::LlmEngine,
};
use serde_json::{Value, json};

const SECRET: &str = "hook-secret";

/// A tiny pack in English and Chinese, written as the corpus format says.
fn write_corpus(root: &Path) {
    let dir = root.join("shop");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("manifest.json"),
        r#"{"format": 1, "pack": "shop", "version": "1.0.0", "title": {"en": "Shop"},
            "description": "test", "languages": ["en", "zh-CN"]}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("en.json"),
        json!({"format": 1, "pack": "shop", "lang": "en",
        "synonyms": [["refund", "money back"], ["parcel", "package", "delivery"]],
        "qa": [
            {"id": "shop.returns", "questions": ["How do I return an item?",
                "What is your return policy?", "Can I send back something I bought?"],
             "answer": "You can return unused items within 7 days of delivery.",
             "quick_replies": ["Start a return"]},
            {"id": "shop.where-is-my-order", "questions": ["Where is my order?",
                "My parcel has not arrived", "Track my package"],
             "answer": "Order {order_no} is on its way.", "entities": ["order_no"]},
            {"id": "shop.refund-time", "questions": ["When will I get my refund?",
                "How long does a refund take?", "refund still not received"],
             "answer": "Refunds reach your account within 3 to 5 working days."}
        ]})
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.join("zh-CN.json"),
        json!({"format": 1, "pack": "shop", "lang": "zh-CN",
            "synonyms": [["退款", "退钱"]],
            "qa": [
                {"id": "shop.returns", "questions": ["怎么退货？", "退货政策是什么", "买的东西能退吗"],
                 "answer": "未使用的商品签收后7天内可以退货。"},
                {"id": "shop.where-is-my-order", "questions": ["我的订单到哪了", "快递还没到", "查一下物流"],
                 "answer": "订单{order_no}正在配送中。", "entities": ["order_no"]},
                {"id": "shop.refund-time", "questions": ["退款多久到账", "什么时候退款", "退款还没收到"],
                 "answer": "退款3到5个工作日到账。"}
            ]})
        .to_string(),
    )
    .unwrap();
}

fn retrieval(root: &Path) -> Arc<RetrievalEngine> {
    Arc::new(RetrievalEngine::load(corpus::load_dir(root, &[]).unwrap()))
}

/// The fake webhook service: refuses a bad signature, answers an order question, and takes
/// two seconds over anything mentioning "slow".
async fn fake_webhook() -> String {
    async fn hook(headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
        let sig = headers
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !verify(SECRET.as_bytes(), &body, sig) {
            return (StatusCode::UNAUTHORIZED, "bad signature".into());
        }
        let req: Value = serde_json::from_slice(&body).unwrap();
        let message = req["message"].as_str().unwrap();
        if message.contains("slow") {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        assert_eq!(req["conversation_id"], "c-1");
        assert_eq!(req["entities"]["order_no"], "A1024");
        let reply = json!({"intent": "shop.where-is-my-order", "confidence": 0.87,
            "answer": "Order {order_no} is on its way.", "handoff": false});
        (StatusCode::OK, reply.to_string())
    }
    serve(Router::new().route("/hook", post(hook))).await
}

fn webhook(url: &str, secret: &str, timeout_ms: u64) -> WebhookEngine {
    WebhookEngine::new(
        &WebhookSettings {
            url: format!("{url}/hook"),
            secret: Secret::new(secret),
            timeout_ms,
        },
        HandoffWords::default(),
    )
    .unwrap()
}

fn ctx() -> BotContext {
    BotContext::default().conversation("c-1")
}

#[tokio::test]
async fn webhook_signs_requests_and_uses_the_answer() {
    let url = fake_webhook().await;
    let bot = webhook(&url, SECRET, 3000);
    let intent = bot.understand(&ctx(), "where is order #A1024?").await;
    assert_eq!(intent.name, "shop.where-is-my-order");
    assert!((intent.confidence - 0.87).abs() < 1e-6);
    let reply = bot.respond(&ctx(), &intent).await;
    assert_eq!(reply.text, "Order A1024 is on its way.");
    assert!(!reply.handoff);
}

#[tokio::test]
async fn webhook_with_a_wrong_secret_hands_over() {
    let url = fake_webhook().await;
    let bot = webhook(&url, "not-the-secret", 3000);
    let intent = bot.understand(&ctx(), "where is order #A1024?").await;
    assert_eq!(intent.name, Intent::HANDOFF);
    assert!(bot.respond(&ctx(), &intent).await.handoff);
}

#[tokio::test]
async fn webhook_timeout_hands_over() {
    let url = fake_webhook().await;
    let bot = webhook(&url, SECRET, 200);
    let start = Instant::now();
    let intent = bot.understand(&ctx(), "slow: where is order #A1024?").await;
    let took = start.elapsed();
    assert_eq!(intent.name, Intent::HANDOFF);
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    let reply = bot.respond(&ctx(), &intent).await;
    assert!(reply.handoff);
    assert!(!reply.text.is_empty());
}

#[tokio::test]
async fn handoff_words_skip_the_webhook() {
    // Nothing listens here: the hand-over word is decided locally, without a request.
    let bot = webhook("http://127.0.0.1:9", SECRET, 200);
    let intent = bot.understand(&ctx(), "转人工").await;
    assert_eq!(intent.name, Intent::HANDOFF);
    assert_eq!(intent.lang, "zh-CN");
}

/// The fake chat-completions endpoint: checks the key and that the prompt carries the pairs;
/// answers "HANDOFF" to questions about the weather and is slow for "slow".
async fn fake_llm() -> String {
    async fn complete(headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer test-key") {
            return (StatusCode::UNAUTHORIZED, "{}".into());
        }
        let req: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(req["model"], "tiny");
        let system = req["messages"][0]["content"].as_str().unwrap();
        let user = req["messages"][1]["content"].as_str().unwrap();
        assert!(system.contains("HANDOFF"), "{system}");
        let content = if user.contains("slow") {
            tokio::time::sleep(Duration::from_secs(2)).await;
            "late".to_owned()
        } else if user.contains("weather") {
            "HANDOFF".to_owned()
        } else {
            assert!(system.contains("within 7 days"), "{system}");
            "Unused items can be returned within 7 days.".to_owned()
        };
        let reply = json!({"id": "x", "object": "chat.completion", "choices": [{"index": 0,
            "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]});
        (StatusCode::OK, reply.to_string())
    }
    serve(Router::new().route("/v1/chat/completions", post(complete))).await
}

fn llm(url: &str, root: &Path) -> LlmEngine {
    LlmEngine::new(
        &LlmSettings {
            base_url: format!("{url}/v1/"),
            model: "tiny".into(),
            api_key: Secret::new("test-key"),
            timeout_ms: 200,
            context_pairs: 3,
        },
        retrieval(root),
    )
    .unwrap()
}

#[tokio::test]
async fn llm_answers_from_the_pairs() {
    let dir = tempfile::tempdir().unwrap();
    write_corpus(dir.path());
    let bot = llm(&fake_llm().await, dir.path());
    let intent = bot.understand(&ctx(), "how can I return an item").await;
    assert_eq!(intent.name, "shop.returns");
    let reply = bot.respond(&ctx(), &intent).await;
    assert_eq!(reply.text, "Unused items can be returned within 7 days.");
    assert!(!reply.handoff);
}

#[tokio::test]
async fn llm_handoff_reply_and_timeout_hand_over() {
    let dir = tempfile::tempdir().unwrap();
    write_corpus(dir.path());
    let bot = llm(&fake_llm().await, dir.path());
    let intent = bot
        .understand(&ctx(), "what is the weather for my delivery")
        .await;
    // The model's HANDOFF means not understood, as a retrieval match below the threshold.
    assert_eq!(intent.name, Intent::UNKNOWN);
    assert!(bot.respond(&ctx(), &intent).await.handoff);

    let start = Instant::now();
    let intent = bot.understand(&ctx(), "slow: return an item").await;
    assert_eq!(intent.name, Intent::HANDOFF);
    assert!(start.elapsed() < Duration::from_millis(1500));
    assert!(bot.respond(&ctx(), &intent).await.handoff);
}

#[tokio::test]
async fn retrieval_engine_answers_and_fills_entities() {
    let dir = tempfile::tempdir().unwrap();
    write_corpus(dir.path());
    let bot = retrieval(dir.path());
    let c = ctx();
    let intent = bot
        .understand(&c, "my package hasn't arrived, order #A1024")
        .await;
    assert_eq!(intent.name, "shop.where-is-my-order", "{intent:?}");
    assert_eq!(intent.entities["order_no"], "A1024");
    let reply = bot.respond(&c, &intent).await;
    assert_eq!(reply.text, "Order A1024 is on its way.");
    let intent = bot.understand(&c, "我的快递怎么还没到").await;
    assert_eq!(intent.name, "shop.where-is-my-order", "{intent:?}");
    assert_eq!(bot.respond(&c, &intent).await.text, "订单正在配送中。");
    let intent = bot.understand(&c, "what's the capital of Australia?").await;
    assert_eq!(intent.name, Intent::UNKNOWN, "{intent:?}");
    assert!(bot.respond(&c, &intent).await.handoff);
}

fn kefu(args: &[&str], cwd: &Path) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args(args)
        .current_dir(cwd)
        .env("KEFU_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kefu {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn cli_ask_stats_and_eval() {
    let dir = tempfile::tempdir().unwrap();
    write_corpus(dir.path());
    let corpus = dir.path().to_str().unwrap();

    let out = kefu(
        &[
            "bot",
            "ask",
            "--corpus",
            corpus,
            "Can I send back the shoes I bought?",
        ],
        dir.path(),
    );
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["intent"], "shop.returns", "{v}");
    assert_eq!(v["handoff"], false);
    assert!(v["confidence"].as_f64().unwrap() >= 0.5);
    assert_eq!(
        v["answer"],
        "You can return unused items within 7 days of delivery."
    );

    let out = kefu(
        &["bot", "ask", "--corpus", corpus, "我要转人工"],
        dir.path(),
    );
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["intent"], "handoff");
    assert_eq!(v["handoff"], true);

    let out = kefu(&["bot", "stats", "--corpus", corpus], dir.path());
    for line in [
        "packs: 1",
        "qa_pairs: 6",
        "questions: 18",
        "topics: 3",
        "languages: en, zh-CN",
    ] {
        assert!(
            out.lines().any(|l| l == line),
            "{line} missing from:\n{out}"
        );
    }

    let eval = dir.path().join("shop.jsonl");
    std::fs::write(
        &eval,
        [
            json!({"question": "what's your returns policy", "expect": "shop.returns"}),
            json!({"question": "退款要多久才能到账", "expect": "shop.refund-time"}),
            json!({"question": "who won the football world cup in 1998", "expect": "handoff"}),
        ]
        .map(|v| v.to_string())
        .join("\n"),
    )
    .unwrap();
    let out = kefu(
        &["bot", "eval", "--corpus", corpus, eval.to_str().unwrap()],
        dir.path(),
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3 + 6, "{out}");
    for l in &lines[..3] {
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["ok"], true, "{v}");
    }
    assert_eq!(
        &lines[3..8],
        [
            "questions: 3",
            "in_scope: 2",
            "out_of_scope: 1",
            "accuracy: 1.000",
            "handoff_accuracy: 1.000"
        ]
    );
    assert!(lines[8].starts_with("p99_ms: "), "{out}");
}

/// Every line of `corpus/eval`: (file name, language, question, expected intent).
fn eval_cases() -> Vec<(String, String, String, String)> {
    let eval_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/eval");
    let mut cases = Vec::new();
    for entry in std::fs::read_dir(&eval_dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let lang = name.split('.').nth(1).unwrap().to_owned();
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            let q = v["question"].as_str().unwrap().to_owned();
            let expect = v["expect"].as_str().unwrap().to_owned();
            cases.push((name.clone(), lang.clone(), q, expect));
        }
    }
    assert!(
        cases.len() >= 2000,
        "only {} eval questions found",
        cases.len()
    );
    cases
}

/// `corpus/eval` is held out: none of its questions may appear (ignoring case, spaces and
/// punctuation) among the questions of the built-in packs, or the eval figures would flatter.
#[test]
fn eval_questions_are_held_out_of_the_builtin_corpus() {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect()
    };
    let mut known = HashMap::new();
    for pack in corpus::builtin(&[]).unwrap() {
        for lang in &pack.languages {
            for qa in &lang.qa {
                for q in &qa.questions {
                    known.insert((lang.lang.clone(), norm(q)), qa.id.clone());
                }
            }
        }
    }
    for (name, lang, q, _) in eval_cases() {
        let clash = known.get(&(lang, norm(&q)));
        assert!(
            clash.is_none(),
            "{name}: {q:?} is also a question of {clash:?}"
        );
    }
}

/// Nor may an eval question be a near copy of a question of the pair it expects (of a decline
/// example, for an out-of-scope one): a corpus question that holds 70% or more of the eval
/// question's character trigrams says the same thing in nearly the same words, and would answer
/// it by rote.
#[test]
fn eval_questions_are_worded_apart_from_their_pairs_questions() {
    fn trigrams(s: &str) -> HashSet<String> {
        let lower: String = s
            .chars()
            .flat_map(|c| {
                let keep = if c.is_alphanumeric() { c } else { ' ' };
                keep.to_lowercase()
            })
            .collect();
        let chars: Vec<char> = lower
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .collect();
        if chars.len() < 3 {
            return HashSet::from([chars.iter().collect()]);
        }
        chars.windows(3).map(|w| w.iter().collect()).collect()
    }
    // (language, pair id) -> the pair's questions with their trigrams.
    type Questions = Vec<(String, HashSet<String>)>;
    let mut by_pair: HashMap<(String, String), Questions> = HashMap::new();
    let mut declines: HashMap<String, Vec<String>> = HashMap::new();
    for pack in corpus::builtin(&[]).unwrap() {
        for lang in &pack.languages {
            for qa in &lang.qa {
                if qa.decline {
                    declines
                        .entry(lang.lang.clone())
                        .or_default()
                        .push(qa.id.clone());
                }
                let key = (lang.lang.clone(), qa.id.clone());
                let list = by_pair.entry(key).or_default();
                list.extend(qa.questions.iter().map(|q| (q.clone(), trigrams(q))));
            }
        }
    }
    let mut near = Vec::new();
    for (name, lang, q, expect) in eval_cases() {
        let ids = if expect == "handoff" {
            declines.get(&lang).cloned().unwrap_or_default()
        } else {
            vec![expect]
        };
        let e = trigrams(&q);
        for id in ids {
            let questions = by_pair.get(&(lang.clone(), id.clone()));
            for (c, t) in questions.into_iter().flatten() {
                if e.intersection(t).count() as f64 >= 0.7 * e.len() as f64 {
                    near.push(format!("{name}: {q:?} ~ {id}: {c:?}"));
                }
            }
        }
    }
    assert!(
        near.is_empty(),
        "{} near copies:\n{}",
        near.len(),
        near.join("\n")
    );
}
