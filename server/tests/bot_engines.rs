//! The webhook and LLM engines in the product, through the real server and local fakes: their
//! settings are checked when saved, their "not understood" counts as the retrieval engine's does,
//! and a turn that finishes after the hand-over posts nothing.

mod common;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use common::*;
use kefu::{ConversationStatus, SenderKind};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};
use tracing_subscriber::layer::SubscriberExt;

/// What a fake endpoint does with one request.
enum Reply {
    /// Answers at once.
    Now(Value),
    /// Answers once the test calls `release.notify_one()`.
    AfterRelease(Value),
    /// Never answers (the engine times out).
    Never,
}

type Script = Arc<dyn Fn(&Value) -> Reply + Send + Sync>;

#[derive(Clone)]
struct FakeState {
    script: Script,
    /// Each request's body and `Authorization` header, as it arrives.
    seen: mpsc::UnboundedSender<(Value, Option<String>)>,
    release: Arc<Notify>,
}

/// A fake webhook service (`/hook`) or chat-completions endpoint (`/v1/chat/completions`).
struct Fake {
    url: String,
    seen: mpsc::UnboundedReceiver<(Value, Option<String>)>,
    release: Arc<Notify>,
}

impl Fake {
    async fn start(script: impl Fn(&Value) -> Reply + Send + Sync + 'static) -> Fake {
        async fn handle(State(s): State<FakeState>, headers: HeaderMap, body: String) -> String {
            let req: Value = serde_json::from_str(&body).unwrap();
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let reply = (s.script)(&req);
            let _ = s.seen.send((req, auth));
            match reply {
                Reply::Now(v) => v.to_string(),
                Reply::AfterRelease(v) => {
                    s.release.notified().await;
                    v.to_string()
                }
                Reply::Never => std::future::pending().await,
            }
        }
        let (tx, seen) = mpsc::unbounded_channel();
        let release = Arc::new(Notify::new());
        let state = FakeState {
            script: Arc::new(script),
            seen: tx,
            release: release.clone(),
        };
        let router = Router::new()
            .route("/hook", post(handle))
            .route("/v1/chat/completions", post(handle))
            .with_state(state);
        Fake {
            url: serve(router).await,
            seen,
            release,
        }
    }

    /// The next request the fake received (body, `Authorization` header).
    async fn request(&mut self) -> (Value, Option<String>) {
        tokio::time::timeout(EVENT_TIMEOUT, self.seen.recv())
            .await
            .expect("no request reached the fake in time")
            .unwrap()
    }
}

/// A chat completion whose message is `content`.
fn completion(content: &str) -> Value {
    json!({"id": "x", "object": "chat.completion", "choices": [{"index": 0,
        "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]})
}

/// The visitor's message in a chat-completions request.
fn user_message(req: &Value) -> &str {
    req["messages"][1]["content"].as_str().unwrap_or("")
}

async fn put_bot(app: &TestApp, config: Value) -> reqwest::Response {
    app.http
        .put(app.url(&format!("/api/v1/sites/{}/bot", app.site_id)))
        .bearer_auth(&app.admin_token)
        .json(&config)
        .send()
        .await
        .unwrap()
}

async fn configure(app: &TestApp, config: Value) {
    let r = put_bot(app, config).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// A refused update's status and error message.
async fn refused(app: &TestApp, config: Value) -> (u16, String) {
    let r = put_bot(app, config).await;
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    (
        status,
        body["error"]["message"].as_str().unwrap().to_owned(),
    )
}

fn llm_bot(base_url: &str, api_key: &str) -> Value {
    json!({"enabled": true, "name": "Tea bot", "engine": "llm", "threshold": 0.5,
           "welcome": "Hi!", "packs": ["general"],
           "llm": {"base_url": format!("{base_url}/v1"), "model": "tiny", "api_key": api_key}})
}

fn webhook_bot(url: &str, secret: &str, threshold: f64) -> Value {
    json!({"enabled": true, "name": "Tea bot", "engine": "webhook", "threshold": threshold,
           "welcome": "Hi!", "packs": ["general"],
           "webhook": {"url": format!("{url}/hook"), "secret": secret}})
}

async fn try_it(app: &TestApp, text: &str) -> reqwest::Response {
    app.agent_post(&format!("/api/v1/sites/{}/bot/try", app.site_id))
        .json(&json!({"text": text}))
        .send()
        .await
        .unwrap()
}

/// The conversation's messages as the console shows them: (sender kind, body).
async fn transcript(app: &TestApp, conversation_id: &str) -> Vec<(String, String)> {
    let h: Value = app
        .agent_json(&format!("/api/v1/conversations/{conversation_id}/messages"))
        .await;
    h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["sender"]["kind"].as_str().unwrap().to_owned(),
                m["body"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The questions in the admin's "could not answer" list.
async fn unanswered(app: &TestApp) -> Vec<String> {
    let u: Value = app
        .agent_json(&format!("/api/v1/sites/{}/bot/unanswered", app.site_id))
        .await;
    let mut q: Vec<String> = u["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["question"].as_str().unwrap().to_owned())
        .collect();
    q.sort();
    q
}

/// Tells the test when the server is done with the bot's turn on a visitor message, whether
/// it posted or dropped it: the hub's "bot turn done" event, with the message's id. What a
/// late turn would post comes before it, so a test that awaits it can then check that nothing
/// came, without waiting a guessed while.
struct TurnsDone(mpsc::UnboundedSender<String>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for TurnsDone {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        #[derive(Default)]
        struct Fields {
            done: bool,
            message_id: Option<String>,
        }
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                match field.name() {
                    "message" => self.done = format!("{v:?}") == "bot turn done",
                    "message_id" => self.message_id = Some(format!("{v:?}")),
                    _ => {}
                }
            }
        }
        let mut f = Fields::default();
        event.record(&mut f);
        if let (true, Some(id)) = (f.done, f.message_id) {
            let _ = self.0.send(id);
        }
    }
}

/// Watches this test's thread (the server runs on it: `#[tokio::test]` is single-threaded)
/// for finished bot turns.
fn watch_turns() -> (
    tracing::subscriber::DefaultGuard,
    mpsc::UnboundedReceiver<String>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(TurnsDone(tx)));
    (guard, rx)
}

async fn turn_done(turns: &mut mpsc::UnboundedReceiver<String>, message_id: &str) {
    loop {
        let id = tokio::time::timeout(EVENT_TIMEOUT, turns.recv())
            .await
            .expect("the bot's turn did not finish in time")
            .unwrap();
        if id == message_id {
            return;
        }
    }
}

#[tokio::test]
async fn an_engine_without_its_endpoint_is_refused_and_a_stored_one_does_not_start() {
    let app = spawn_app().await;
    let mut no_model = llm_bot("http://127.0.0.1:9", "k");
    no_model["llm"]["model"] = json!("");
    let mut no_base = llm_bot("http://127.0.0.1:9", "k");
    no_base["llm"]["base_url"] = json!("");
    let mut no_url = webhook_bot("http://127.0.0.1:9", "s", 0.5);
    no_url["webhook"]["url"] = json!("");
    for (config, field) in [
        (no_model.clone(), "llm.model"),
        (no_base, "llm.base_url"),
        (no_url, "webhook.url"),
    ] {
        let (status, message) = refused(&app, config).await;
        assert_eq!(status, 400);
        assert!(message.contains(field), "{message}");
    }

    // A configuration stored before it was checked (as older versions did): the bot does not
    // start, says why to the admin, and visitors go straight to people.
    app.storage
        .set_site_bot(&app.site_id, &no_model.to_string())
        .await
        .unwrap();
    for _ in 0..2 {
        let r = try_it(&app, "what are your opening hours").await;
        assert_eq!(r.status(), 503);
        let e: Value = r.json().await.unwrap();
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.contains("llm.model"), "{message}");
    }
    let visitor = app.visitor().await;
    let mut tab = visitor.ws().await;
    tab.say("v1", "what are your opening hours").await;
    let first = tab.ack().await;
    assert_eq!(first.seq, 1, "no welcome: the bot is off");
    tab.say("v2", "hello?").await;
    tab.ack().await;
    let c = app.conversation(&first.conversation_id).await;
    assert_eq!(c.status, ConversationStatus::Open);
    let kinds: Vec<String> = transcript(&app, &c.id)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(kinds, ["visitor", "visitor"]);
}

#[tokio::test]
async fn a_stored_key_is_only_sent_to_the_url_it_was_entered_for() {
    let app = spawn_app().await;
    let mut llm = Fake::start(|_| Reply::Now(completion("We open at 9."))).await;
    let other = Fake::start(|_| Reply::Now(completion("We open at 9."))).await;

    configure(&app, llm_bot(&llm.url, "sk-first")).await;
    let r = try_it(&app, "what are your opening hours").await;
    assert_eq!(r.status(), 200);
    assert_eq!(llm.request().await.1.as_deref(), Some("Bearer sk-first"));

    // The console sends the configuration back with the key blank (it only sees it redacted).
    let (status, message) = refused(&app, llm_bot(&other.url, "")).await;
    assert_eq!(status, 400);
    assert!(
        message.contains("API key must be entered again because the base URL changed"),
        "{message}"
    );
    configure(&app, llm_bot(&llm.url, "")).await;
    try_it(&app, "what are your opening hours").await;
    assert_eq!(
        llm.request().await.1.as_deref(),
        Some("Bearer sk-first"),
        "same URL: the stored key is kept"
    );

    let hook = Fake::start(|_| Reply::Now(json!({}))).await;
    configure(&app, webhook_bot(&hook.url, "hook-secret", 0.5)).await;
    configure(&app, webhook_bot(&hook.url, "", 0.5)).await;
    let (status, message) = refused(&app, webhook_bot(&other.url, "", 0.5)).await;
    assert_eq!(status, 400);
    assert!(
        message.contains("webhook secret must be entered again because the webhook URL changed"),
        "{message}"
    );
}

#[tokio::test]
async fn a_webhook_answer_below_the_threshold_is_not_understood() {
    let app = spawn_app().await;
    let hook = Fake::start(|req| {
        let message = req["message"].as_str().unwrap_or("");
        Reply::Now(if message.contains("Macau") {
            json!({"intent": "ship-macau", "confidence": 0.9,
                   "answer": "Yes, we ship to Macau in 3 days."})
        } else {
            json!({"intent": "guess", "confidence": 0.3, "answer": "Maybe on Tuesday?"})
        })
    })
    .await;
    configure(&app, webhook_bot(&hook.url, "s", 0.6)).await;
    let visitor = app.visitor().await;
    let mut tab = visitor.ws().await;

    tab.say("v1", "Do you ship to Macau?").await;
    let asked = tab.ack().await;
    assert_eq!(tab.bot_says().await.body, "Hi!");
    let answer = tab.bot_says().await;
    assert_eq!(answer.sender.kind, SenderKind::Bot);
    assert_eq!(answer.body, "Yes, we ship to Macau in 3 days.");

    tab.say("v2", "When does the shuttle to Mars leave?").await;
    tab.ack().await;
    let first = tab.bot_says().await;
    assert_eq!(first.sender.kind, SenderKind::Bot);
    assert_eq!(first.body, kefu_server::assistant::rephrase("en"));
    assert_eq!(first.quick_replies, ["Talk to a person"]);

    tab.say("v3", "And the one to Venus?").await;
    tab.ack().await;
    // Two in a row: handed over (nobody is online, so the note offers to leave details).
    let note = tab.bot_says().await;
    assert_eq!(note.sender.kind, SenderKind::System);
    assert!(note.meta.as_ref().is_some_and(|m| m.handoff && m.offline));

    let c = app.conversation(&asked.conversation_id).await;
    assert_eq!(c.status, ConversationStatus::Open);
    let said = transcript(&app, &c.id).await;
    assert!(
        !said.iter().any(|(_, body)| body.contains("Tuesday")),
        "{said:?}"
    );
    assert_eq!(
        unanswered(&app).await,
        [
            "And the one to Venus?",
            "When does the shuttle to Mars leave?"
        ]
    );
}

#[tokio::test]
async fn an_llm_handoff_reply_is_never_shown_and_counts_as_not_understood() {
    let app = spawn_app().await;
    let mut llm = Fake::start(|req| {
        Reply::Now(completion(if user_message(req).contains("Sunday") {
            "I'm sorry, the information I have does not cover that.\nHANDOFF"
        } else {
            "抱歉，我无法回答。HANDOFF"
        }))
    })
    .await;
    configure(&app, llm_bot(&llm.url, "")).await;
    let visitor = app.visitor().await;
    let mut tab = visitor.ws().await;

    tab.say("v1", "what are your opening hours").await;
    let asked = tab.ack().await;
    tab.bot_says().await; // welcome
    let first = tab.bot_says().await;
    assert_eq!(first.sender.kind, SenderKind::Bot);
    assert_eq!(first.body, kefu_server::assistant::rephrase("en"));
    let (req, _) = llm.request().await;
    assert_eq!(user_message(&req), "what are your opening hours");

    tab.say("v2", "are you open on Sunday").await;
    tab.ack().await;
    let note = tab.bot_says().await;
    assert_eq!(note.sender.kind, SenderKind::System);
    assert!(note.meta.as_ref().is_some_and(|m| m.handoff));

    let said = transcript(&app, &asked.conversation_id).await;
    assert!(
        !said
            .iter()
            .any(|(_, body)| body.contains("HANDOFF") || body.contains("无法回答")),
        "{said:?}"
    );
    assert_eq!(
        unanswered(&app).await,
        ["are you open on Sunday", "what are your opening hours"]
    );
}

#[tokio::test]
async fn an_llm_answer_that_comes_after_the_hand_over_is_not_posted() {
    // The engine's own timeout is not what ends the slow turn here: the test does.
    let app = spawn_app_with(|s| s.bot.llm.timeout_ms = 60_000).await;
    let mut llm = Fake::start(|req| {
        if user_message(req).contains("slow") {
            Reply::AfterRelease(completion("We open at 9 every day."))
        } else {
            Reply::Now(completion("HANDOFF"))
        }
    })
    .await;
    configure(&app, llm_bot(&llm.url, "")).await;
    let (_watch, mut turns) = watch_turns();
    let mut agent = app.agent_ws().await;
    let visitor = app.visitor().await;
    let mut tab = visitor.ws().await;

    tab.say("v1", "slow: what are your opening hours").await;
    let slow = tab.ack().await;
    assert_eq!(tab.bot_says().await.body, "Hi!");
    llm.request().await; // the engine is waiting for the model
    tab.say("v2", "转人工").await;
    tab.ack().await;
    let note = tab.bot_says().await;
    assert!(note.meta.as_ref().is_some_and(|m| m.handoff && !m.offline));
    let handed = agent.opened().await;
    let me: Value = app.agent_json("/api/v1/me").await;
    assert_eq!(handed.assignee_id.as_deref(), me["agent"]["id"].as_str());

    llm.release.notify_one();
    turn_done(&mut turns, &slow.id).await;
    let said = transcript(&app, &slow.conversation_id).await;
    let kinds: Vec<&str> = said.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        ["bot", "visitor", "visitor", "system"],
        "welcome, the two questions, the one note: {said:?}"
    );
}

#[tokio::test]
async fn a_turn_that_times_out_after_the_hand_over_hands_over_nothing() {
    let app = spawn_app_with(|s| s.bot.webhook.timeout_ms = 1000).await;
    let mut hook = Fake::start(|req| {
        if req["message"].as_str().unwrap_or("").contains("slow") {
            Reply::Never
        } else {
            Reply::Now(json!({"answer": "ok", "confidence": 1.0}))
        }
    })
    .await;
    configure(&app, webhook_bot(&hook.url, "s", 0.5)).await;
    let (_watch, mut turns) = watch_turns();
    // Two agents online: conversations go to Alice, then Bob, then Alice…
    let mut alice = app.agent_ws().await;
    let (bob, bob_token) = app.add_agent("bob@example.com", "Bob").await;
    let _bob_ws = app.agent_ws_with(&bob_token).await;

    let visitor = app.visitor().await;
    let mut tab = visitor.ws().await;
    tab.say("v1", "slow: where is my parcel").await;
    let slow = tab.ack().await;
    hook.request().await;
    tab.say("v2", "转人工").await;
    tab.ack().await;
    let first = alice.opened().await;
    assert_ne!(first.assignee_id.as_deref(), Some(bob.id.as_str()));

    // The webhook times out: the engine hands over, but the conversation is no longer the
    // bot's.
    turn_done(&mut turns, &slow.id).await;
    let said = transcript(&app, &slow.conversation_id).await;
    let notes = said.iter().filter(|(k, _)| k == "system").count();
    assert_eq!(notes, 1, "one hand-over note: {said:?}");
    let c = app.conversation(&slow.conversation_id).await;
    assert_eq!(c.assignee_id, first.assignee_id);
    // Handing it over again changes nothing.
    let again = app
        .storage
        .hand_over(&slow.conversation_id, Some(&bob.id))
        .await
        .unwrap();
    assert!(again.is_none(), "{again:?}");

    // The round robin moved on once: the next conversation is Bob's.
    let other = app.visitor().await;
    let mut other_tab = other.ws().await;
    other_tab.say("w1", "转人工").await;
    other_tab.ack().await;
    let second = alice.opened().await;
    assert_eq!(second.assignee_id.as_deref(), Some(bob.id.as_str()));
}
