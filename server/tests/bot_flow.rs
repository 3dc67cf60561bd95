//! The bot in the product, through the real server: it answers first, hands over when asked
//! or unsure, and an agent takes over.

mod common;

use common::*;
use kefu::frame::ServerFrame;
use kefu::{ConversationStatus, SenderKind};
use serde_json::{Value, json};

async fn enable_bot(app: &TestApp) {
    let r = app
        .http
        .put(app.url(&format!("/api/v1/sites/{}/bot", app.site_id)))
        .bearer_auth(&app.admin_token)
        .json(
            &json!({"enabled": true, "name": "Tea bot", "engine": "retrieval",
                      "threshold": 0.5, "welcome": "Hi! Ask me anything.",
                      "packs": ["general"], "handoff_words": ["human", "转人工", "real person"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn the_bot_welcomes_answers_and_hands_over_when_asked() {
    let app = spawn_app().await;
    enable_bot(&app).await;
    let visitor = app.visitor().await;
    let mut tab = visitor.ws().await;

    tab.say("v1", "what are your opening hours").await;
    let asked = tab.ack().await;
    assert_eq!(asked.seq, 2, "the welcome opens the log");
    let welcome = tab.bot_says().await;
    assert_eq!(
        (welcome.seq, welcome.body.as_str()),
        (1, "Hi! Ask me anything.")
    );
    assert_eq!(welcome.sender.kind, SenderKind::Bot);
    let answer = tab.bot_says().await;
    assert_eq!(answer.sender.kind, SenderKind::Bot);
    assert_eq!(answer.sender.name.as_deref(), Some("Tea bot"));
    assert!(
        answer.body.to_lowercase().contains("monday"),
        "{}",
        answer.body
    );
    assert_eq!(
        answer.meta.as_ref().and_then(|m| m.intent.as_deref()),
        Some("general.service-hours")
    );
    let c = app.conversation(&asked.conversation_id).await;
    assert_eq!(c.status, ConversationStatus::Pending);
    assert_eq!(
        c.assignee_id, None,
        "the bot's conversation is nobody's yet"
    );

    // An agent comes online, then the visitor asks for a person.
    let mut agent = app.agent_ws().await;
    tab.say("v2", "转人工").await;
    tab.ack().await;
    // The pack's own "talk to a person" answer may come first; then the hand-over note.
    let note = tab
        .until(|f| match f {
            ServerFrame::Message { message } if message.sender.kind == SenderKind::System => {
                Some(message)
            }
            _ => None,
        })
        .await;
    assert!(note.meta.as_ref().is_some_and(|m| m.handoff && !m.offline));
    let handed = agent.opened().await;
    let me: Value = app.agent_json("/api/v1/me").await;
    assert_eq!(handed.assignee_id.as_deref(), me["agent"]["id"].as_str());

    // The agent sees the bot's transcript, and from now on the bot is quiet.
    let h: Value = app
        .agent_json(&format!("/api/v1/conversations/{}/messages", handed.id))
        .await;
    let kinds: Vec<&str> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["sender"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds[..4], ["bot", "visitor", "bot", "visitor"]);
    assert_eq!(kinds.last(), Some(&"system"));
    tab.say("v3", "hello?").await;
    tab.ack().await;
    agent
        .say_in(&handed.id, "a1", "Hi, I'm Alice. How can I help?")
        .await;
    agent.ack().await;
    let next = tab.bot_says().await;
    assert_eq!(
        next.sender.kind,
        SenderKind::Agent,
        "no bot answer after the hand-over"
    );
}

#[tokio::test]
async fn two_unclear_questions_hand_over_and_are_kept_for_the_admin() {
    let app = spawn_app().await;
    enable_bot(&app).await;
    let visitor = app.visitor().await;
    let mut tab = visitor.ws().await;
    tab.say("v1", "qwpoeiru zxmcnv").await;
    tab.ack().await;
    tab.bot_says().await; // welcome
    let first = tab.bot_says().await;
    assert_eq!(first.sender.kind, SenderKind::Bot);
    assert!(
        !first.quick_replies.is_empty(),
        "offers the way to a person"
    );
    tab.say("v2", "umm the thing with the stuff").await;
    tab.ack().await;
    // Nobody is online: the note offers to leave contact details.
    let note = tab.bot_says().await;
    assert_eq!(note.sender.kind, SenderKind::System);
    assert!(note.meta.as_ref().is_some_and(|m| m.offline));

    let r = visitor
        .http
        .post(app.url("/api/v1/widget/contact"))
        .bearer_auth(&visitor.token)
        .json(&json!({"name": "Li", "note": "call me"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "an email or a phone is needed");
    let r = visitor
        .http
        .post(app.url("/api/v1/widget/contact"))
        .bearer_auth(&visitor.token)
        .json(&json!({"name": "Li", "email": "li@example.com", "note": "call me"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let v = app.storage.visitor(&visitor.id).await.unwrap().unwrap();
    assert_eq!(v.info.email.as_deref(), Some("li@example.com"));
    // A second message adds to the first instead of replacing it.
    let r = visitor
        .http
        .post(app.url("/api/v1/widget/contact"))
        .bearer_auth(&visitor.token)
        .json(&json!({"phone": "+86 138 0000 0000", "note": "or text me"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let v = app.storage.visitor(&visitor.id).await.unwrap().unwrap();
    assert_eq!(v.info.note.as_deref(), Some("call me\nor text me"));
    assert_eq!(v.info.email.as_deref(), Some("li@example.com"));

    let u: Value = app
        .agent_json(&format!("/api/v1/sites/{}/bot/unanswered", app.site_id))
        .await;
    let questions: Vec<&str> = u["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["question"].as_str().unwrap())
        .collect();
    assert_eq!(questions.len(), 2);
    assert!(questions.contains(&"qwpoeiru zxmcnv"));
}

#[tokio::test]
async fn a_question_the_site_does_not_answer_hands_over_at_once_and_is_not_kept() {
    let app = spawn_app().await;
    enable_bot(&app).await;
    let (status, v) = app
        .add_qa(json!({"lang": "en", "decline": true,
                       "questions": ["do you sell iphones", "are there any smartphones for sale"]}))
        .await;
    assert_eq!(status, 201, "{v}");

    let mut agent = app.agent_ws().await;
    let visitor = app.visitor().await;
    let mut tab = visitor.ws().await;
    tab.say("v1", "do you sell iphones").await;
    let asked = tab.ack().await;
    tab.bot_says().await; // welcome
    // No "could you put it another way?" first: the hand-over note comes next.
    let note = tab.bot_says().await;
    assert_eq!(note.sender.kind, SenderKind::System, "{}", note.body);
    assert!(note.meta.as_ref().is_some_and(|m| m.handoff && !m.offline));
    let handed = agent.opened().await;
    assert_eq!(handed.id, asked.conversation_id);

    // The admin said the site does not answer it: it is not a question for the list of those
    // the bot could not answer.
    let u: Value = app
        .agent_json(&format!("/api/v1/sites/{}/bot/unanswered", app.site_id))
        .await;
    assert_eq!(u["items"], json!([]), "{u}");
}

#[tokio::test]
async fn an_admin_teaches_the_bot_and_tries_it() {
    let app = spawn_app().await;
    enable_bot(&app).await;
    let base = format!("/api/v1/sites/{}", app.site_id);
    let (status, created) = app
        .add_qa(
            json!({"lang": "en", "questions": ["Do you sell oolong tea?", "any oolong?",
                       "is there oolong in stock"], "answer": "Yes: Tieguanyin and Da Hong Pao."}),
        )
        .await;
    assert_eq!(status, 201);
    let id = created["qa"]["id"].as_str().unwrap().to_owned();

    let tried = app.bot_try("do you have oolong tea").await;
    assert_eq!(tried["intent"], format!("site.{id}"));
    assert_eq!(tried["answer"], "Yes: Tieguanyin and Da Hong Pao.");
    assert!(tried["confidence"].as_f64().unwrap() >= 0.5);

    let r = app
        .agent_post(&format!("{base}/qa/import"))
        .header("content-type", "text/csv")
        .body("question,answer\nDo you ship to Macau?,\"Yes, in 3 days.\"\n\"Macau delivery, how long?\",\"Yes, in 3 days.\"\n")
        .send()
        .await
        .unwrap();
    let imported: Value = r.json().await.unwrap();
    assert_eq!(imported["imported"], 1);
    let list: Value = app.agent_json(&format!("{base}/qa?q=macau")).await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["qa"][0]["questions"].as_array().unwrap().len(), 2);

    let r = app
        .http
        .delete(app.url(&format!("{base}/qa/{id}")))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // Bad settings are refused with the reason.
    let r = app
        .http
        .put(app.url(&format!("{base}/bot")))
        .bearer_auth(&app.admin_token)
        .json(&json!({"enabled": true, "threshold": 3, "engine": "retrieval", "name": "b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("threshold")
    );
    // So are pairs and words past their bounds, each saying which bound.
    let refused = |path: String, method: reqwest::Method, body: Value| {
        let req = app
            .http
            .request(method, app.url(&path))
            .bearer_auth(&app.admin_token)
            .json(&body);
        async move {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 400);
            let e: Value = r.json().await.unwrap();
            e["error"]["message"].as_str().unwrap().to_owned()
        }
    };
    let many: Vec<String> = (0..201).map(|i| format!("question {i}")).collect();
    let m = refused(
        format!("{base}/qa"),
        reqwest::Method::POST,
        json!({"lang": "en", "questions": many, "answer": "a"}),
    )
    .await;
    assert!(m.contains("at most 200 questions"), "{m}");
    let m = refused(
        format!("{base}/qa"),
        reqwest::Method::POST,
        json!({"lang": "en", "questions": ["q"], "answer": "a",
               "quick_replies": ["x".repeat(61)]}),
    )
    .await;
    assert!(m.contains("at most 60 characters"), "{m}");
    let m = refused(
        format!("{base}/bot"),
        reqwest::Method::PUT,
        json!({"enabled": true, "engine": "retrieval", "name": "b",
               "handoff_words": ["人".repeat(61)]}),
    )
    .await;
    assert!(m.contains("hand-over word"), "{m}");
}
