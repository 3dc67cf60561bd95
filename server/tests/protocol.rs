//! The protocol's guarantees, checked through a real server over real sockets.

mod common;

use common::*;
use kefu::ErrorCode;
use kefu::frame::ServerFrame;
use serde_json::{Value, json};

#[tokio::test]
async fn visitor_message_is_acked_then_delivered_to_the_agent() {
    let app = spawn_app().await;
    let mut agent = app.agent_ws().await;
    let visitor = app.visitor().await;
    let mut tab = visitor.ws().await;

    tab.say("c1", "Where is my order #A1024?").await;
    let acked = tab.ack().await;
    assert_eq!(acked.seq, 1);
    assert_eq!(acked.body, "Where is my order #A1024?");
    assert_eq!(acked.client_msg_id.as_deref(), Some("c1"));

    // The console learns of the new conversation, then gets the message itself.
    let conversation = agent
        .until(|f| match f {
            ServerFrame::Conversation { conversation } => Some(conversation),
            _ => None,
        })
        .await;
    assert_eq!(conversation.id, acked.conversation_id);
    assert_eq!(conversation.visitor_id, visitor.id);
    let delivered = agent.message().await;
    assert_eq!(delivered, acked);

    // The message is in the REST history, with the visitor's context in the conversation.
    let c: Value = app
        .agent_json(&format!("/api/v1/conversations/{}", acked.conversation_id))
        .await;
    let v = &c["conversation"]["visitor"];
    assert_eq!(v["page_url"], "https://shop.example/p/1");
    assert_eq!(v["referrer"], "https://search.example/?q=tea");
    assert_eq!(v["browser"], "Chrome 131");
    assert_eq!(v["os"], "Linux");
    assert_eq!(v["ip"], "127.0.0.1");
    assert_eq!(v["timezone"], "Asia/Shanghai");
}

#[tokio::test]
async fn agent_reply_reaches_every_tab_of_the_visitor_once() {
    let app = spawn_app().await;
    let mut agent = app.agent_ws().await;
    let visitor = app.visitor().await;
    let mut tab1 = visitor.ws().await;
    let mut tab2 = visitor.ws().await;

    tab1.say("c1", "hello").await;
    let first = tab1.ack().await;
    // The other tab sees the visitor's own message as a `message`; the sender only as `ack`.
    assert_eq!(tab2.message().await, first);
    agent.message().await;

    agent
        .say_in(&first.conversation_id, "a1", "Hi! How can I help?")
        .await;
    let reply = agent.ack().await;
    assert_eq!(reply.sender.name.as_deref(), Some("Alice Admin"));
    assert_eq!(tab1.message().await, reply);
    assert_eq!(tab2.message().await, reply);

    // Nothing else is pending on tab1: the next frame is the pong to our ping.
    tab1.send(json!({"type": "ping"})).await;
    assert!(matches!(tab1.next().await, ServerFrame::Pong));
}

#[tokio::test]
async fn a_retried_send_returns_the_same_message_and_is_delivered_once() {
    let app = spawn_app().await;
    let mut agent = app.agent_ws().await;
    let visitor = app.visitor().await;
    let mut tab = visitor.ws().await;

    tab.say("same-id", "I was charged twice").await;
    let first = tab.ack().await;
    tab.say("same-id", "I was charged twice").await;
    let again = tab.ack().await;
    assert_eq!(first, again, "same id, same seq, same message");

    // Also over long-polling, and after reconnecting.
    let r = visitor.post("same-id", "I was charged twice").await;
    assert_eq!(r.status(), 200);
    let via_http: Value = r.json().await.unwrap();
    assert_eq!(via_http["message"]["id"], first.id.as_str());
    drop(tab);
    let mut tab = visitor.ws().await;
    tab.say("same-id", "I was charged twice").await;
    assert_eq!(tab.ack().await.seq, first.seq);

    tab.say("next-id", "second question").await;
    let second = tab.ack().await;
    assert_eq!(second.seq, 2);

    // The agent got the first message once, then the second: no duplicate in between.
    assert_eq!(agent.message().await.id, first.id);
    assert_eq!(agent.message().await.id, second.id);
}

#[tokio::test]
async fn resume_replays_exactly_the_missed_messages_in_order() {
    let app = spawn_app().await;
    let mut agent = app.agent_ws().await;
    let visitor = app.visitor().await;
    let mut tab = visitor.ws().await;
    tab.say("v1", "hi").await;
    let m1 = tab.ack().await;
    let conv = m1.conversation_id.clone();
    drop(tab); // the visitor's network drops

    let mut sent = Vec::new();
    for (i, body) in ["one", "two", "three"].iter().enumerate() {
        agent.say_in(&conv, &format!("a{i}"), body).await;
        sent.push(agent.ack().await);
        if i == 1 {
            agent
                .send(
                    json!({"type": "send", "conversation_id": conv, "client_msg_id": "note",
                             "body": "VIP customer", "private": true}),
                )
                .await;
            assert!(agent.ack().await.private);
        }
    }

    let mut tab = visitor.ws().await;
    tab.send(json!({"type": "resume", "conversation_id": conv, "after_seq": m1.seq}))
        .await;
    let mut replayed = Vec::new();
    let last_seq = loop {
        match tab.next().await {
            ServerFrame::Message { message } => replayed.push(message),
            ServerFrame::CaughtUp { last_seq, .. } => break last_seq,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(
        replayed, sent,
        "the three replies, in order, without the private note"
    );
    assert_eq!(last_seq, 5);
    let seqs: Vec<u64> = replayed.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, vec![2, 3, 5], "a gap where the private note sits");

    // A resume from 0 gives the whole history; from the end gives nothing.
    tab.send(json!({"type": "resume", "conversation_id": conv, "after_seq": 5}))
        .await;
    assert!(matches!(
        tab.next().await,
        ServerFrame::CaughtUp { last_seq: 5, .. }
    ));
}

#[tokio::test]
async fn private_notes_never_reach_the_visitor() {
    let app = spawn_app().await;
    let mut agent = app.agent_ws().await;
    let visitor = app.visitor().await;
    let mut tab = visitor.ws().await;
    tab.say("v1", "hi").await;
    let conv = tab.ack().await.conversation_id;

    agent
        .send(
            json!({"type": "send", "conversation_id": conv, "client_msg_id": "n1",
                     "body": "internal: refund approved", "private": true}),
        )
        .await;
    let note = agent.ack().await;
    assert!(note.private);
    agent.say_in(&conv, "a1", "Your refund is on its way").await;
    let public = agent.ack().await;

    // Live: the next message the visitor gets is the public one.
    assert_eq!(tab.message().await, public);
    // History over long-polling and resume: no note either.
    let events = visitor.events(0, 0).await;
    let bodies: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"]["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, vec!["hi", "Your refund is on its way"]);
    // The agents' REST history has it.
    let h: Value = app
        .agent_json(&format!(
            "/api/v1/conversations/{conv}/messages?after_seq=0"
        ))
        .await;
    assert_eq!(h["messages"].as_array().unwrap().len(), 3);
    assert_eq!(h["messages"][1]["private"], true);
}

#[tokio::test]
async fn long_polling_sends_and_waits_for_the_reply() {
    let app = spawn_app().await;
    let mut agent = app.agent_ws().await;
    let visitor = app.visitor().await;

    let r = visitor.post("lp1", "hello over plain HTTP").await;
    assert_eq!(r.status(), 200);
    let sent: Value = r.json().await.unwrap();
    let conv = sent["message"]["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(sent["message"]["seq"], 1);
    assert_eq!(agent.message().await.body, "hello over plain HTTP");

    // A poll after seq 1 waits; the agent's reply ends it.
    let poll = tokio::spawn({
        let token = visitor.token.clone();
        let url = app.url("/api/v1/widget/events?after_seq=1&wait=25");
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    });
    // Any ordering of the poll and the reply works: the poll listens before it looks.
    agent.say_in(&conv, "r1", "Got it!").await;
    agent.ack().await;
    let got = tokio::time::timeout(EVENT_TIMEOUT, poll)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got["events"][0]["type"], "message");
    assert_eq!(got["events"][0]["message"]["body"], "Got it!");
    assert_eq!(got["last_seq"], 2);
    assert_eq!(got["conversation_id"], conv.as_str());

    // An empty wait answers with no events and the same last_seq.
    let idle = visitor.events(2, 0).await;
    assert_eq!(idle["events"].as_array().unwrap().len(), 0);
    assert_eq!(idle["last_seq"], 2);
}

#[tokio::test]
async fn a_visitor_cannot_read_or_post_into_a_foreign_conversation() {
    let app = spawn_app().await;
    let alice = app.visitor().await;
    let mallory = app.visitor().await;
    let mut a = alice.ws().await;
    a.say("a1", "my address is 1 Main St").await;
    let conv = a.ack().await.conversation_id;

    let mut m = mallory.ws().await;
    m.send(json!({"type": "resume", "conversation_id": conv, "after_seq": 0}))
        .await;
    assert_eq!(m.error().await.0, ErrorCode::Forbidden);
    m.say_in(&conv, "m1", "injected").await;
    let (code, _, cmid) = m.error().await;
    assert_eq!(code, ErrorCode::Forbidden);
    assert_eq!(cmid.as_deref(), Some("m1"));
    m.send(json!({"type": "resume", "conversation_id": "nope", "after_seq": 0}))
        .await;
    assert_eq!(m.error().await.0, ErrorCode::NotFound);

    // Nothing was injected into Alice's conversation.
    let h = alice.events(0, 0).await;
    assert_eq!(h["events"].as_array().unwrap().len(), 1);

    // A forged or missing token gets nowhere.
    let forged = alice.token.replace(&alice.id, &mallory.id);
    let r = reqwest::Client::new()
        .get(app.url("/api/v1/widget/events?after_seq=0&wait=0"))
        .bearer_auth(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let ws =
        tokio_tungstenite::connect_async(format!("ws://{}/ws/visitor?token={forged}", app.addr))
            .await;
    assert!(ws.is_err(), "a forged token must not open a socket");
    // Visitor tokens are not agent credentials.
    let r = reqwest::Client::new()
        .get(app.url("/api/v1/conversations"))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn an_agent_sees_only_the_sites_it_belongs_to() {
    let app = spawn_app().await;
    // Bob joins the sites that exist when he is added; "Other shop" comes later.
    let (_, bob_token) = app.add_agent("bob@example.com", "Bob").await;
    let other = app.storage.create_site("Other shop", &[]).await.unwrap();

    let visitor = app.visitor_on(&other.site_key).await;
    let mut tab = visitor.ws().await;
    tab.say("v1", "hello").await;
    let conv = tab.ack().await.conversation_id;

    let get = |path: String| {
        reqwest::Client::new()
            .get(app.url(&path))
            .bearer_auth(&bob_token)
            .send()
    };
    assert_eq!(
        get(format!("/api/v1/conversations/{conv}"))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        get(format!("/api/v1/conversations/{conv}/messages"))
            .await
            .unwrap()
            .status(),
        403
    );
    let list: Value = get("/api/v1/conversations".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["conversations"].as_array().unwrap().len(), 0);
    let mut bob_ws = app.agent_ws_with(&bob_token).await;
    bob_ws.say_in(&conv, "b1", "hijack").await;
    assert_eq!(bob_ws.error().await.0, ErrorCode::Forbidden);
    let r = reqwest::Client::new()
        .get(app.url("/api/v1/conversations/does-not-exist"))
        .bearer_auth(&bob_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn bad_input_gets_the_documented_errors_and_the_connection_stays_usable() {
    let app = spawn_app().await;
    let visitor = app.visitor().await;
    let mut tab = visitor.ws().await;

    tab.send_raw("this is not json").await;
    let (code, msg, _) = tab.error().await;
    assert_eq!(code, ErrorCode::BadFrame);
    assert!(msg.contains("JSON"), "{msg}");

    tab.send(json!({"type": "teleport"})).await;
    assert_eq!(tab.error().await.0, ErrorCode::BadFrame);

    tab.send(json!({"type": "send", "client_msg_id": "x1"}))
        .await;
    let (code, msg, cmid) = tab.error().await;
    assert_eq!((code, cmid.as_deref()), (ErrorCode::BadFrame, Some("x1")));
    assert!(msg.contains("body"), "{msg}");

    tab.say("x2", "   ").await;
    assert_eq!(
        tab.error().await,
        (
            ErrorCode::Invalid,
            "body is empty".into(),
            Some("x2".into())
        )
    );

    tab.say("x3", &"长".repeat(4001)).await;
    let (code, msg, _) = tab.error().await;
    assert_eq!(code, ErrorCode::Invalid);
    assert!(msg.contains("4000"), "{msg}");

    tab.say(&"i".repeat(65), "hi").await;
    assert_eq!(tab.error().await.0, ErrorCode::Invalid);

    tab.say("x4", &"a".repeat(40 * 1024)).await;
    let (code, msg, _) = tab.error().await;
    assert_eq!(code, ErrorCode::TooLarge);
    assert!(msg.contains("limit"), "{msg}");

    tab.ping().await;
    tab.say("ok", "still here").await;
    assert_eq!(tab.ack().await.body, "still here");

    // Binary frames are refused with a reason.
    futures_util::SinkExt::send(
        &mut tab.stream,
        tokio_tungstenite::tungstenite::Message::Binary(vec![1, 2, 3].into()),
    )
    .await
    .unwrap();
    assert_eq!(tab.error().await.0, ErrorCode::BadFrame);
    tab.ping().await;
}

#[tokio::test]
async fn a_flood_is_rate_limited_without_losing_what_was_acked() {
    let app = spawn_app().await;
    let mut agent = app.agent_ws().await;
    let visitor = app.visitor().await;
    let mut tab = visitor.ws().await;
    for i in 0..40 {
        tab.say(&format!("f{i}"), &format!("flood {i}")).await;
    }
    let (mut acked, mut limited) = (Vec::new(), 0);
    while acked.len() + limited < 40 {
        match tab.next().await {
            ServerFrame::Ack { message, .. } => acked.push(message),
            ServerFrame::Error {
                code,
                client_msg_id,
                ..
            } => {
                assert_eq!(code, ErrorCode::RateLimited);
                assert!(client_msg_id.is_some(), "the error names the refused send");
                limited += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(limited > 0, "a flood of 40 must hit the limit");
    assert!(acked.len() >= 10, "the burst allowance goes through");
    // Everything acked reached the agent, in order, once.
    for m in &acked {
        assert_eq!(&agent.message().await, m);
    }
    tab.ping().await;

    // Over HTTP the same budget answers 429 with the protocol's code.
    let r = visitor.post("f-http", "more").await;
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
}

#[tokio::test]
async fn a_frame_over_the_hard_limit_closes_the_connection_with_a_reason() {
    let app = spawn_app().await;
    let visitor = app.visitor().await;
    let mut tab = visitor.ws().await;
    tab.say("big", &"a".repeat(300 * 1024)).await;
    let code = tab.closed().await;
    assert_eq!(code.map(u16::from), Some(1009));
    // The visitor reconnects and goes on.
    let mut tab = visitor.ws().await;
    tab.say("after", "hello again").await;
    assert_eq!(tab.ack().await.seq, 1);
}

#[tokio::test]
async fn http_errors_say_what_was_wrong() {
    let app = spawn_app().await;
    let post = |path: &str, body: String| {
        app.http
            .post(app.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let r = post(
        "/api/v1/widget/sessions",
        json!({"site_key": "nope"}).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 404);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "not_found");
    assert!(e["error"]["message"].as_str().unwrap().contains("nope"));

    let r = post("/api/v1/widget/sessions", "{oops".into())
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = post(
        "/api/v1/widget/sessions",
        json!({"site_key": app.site_key, "user": {"id": "42", "hash": "00"}}).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 401);
    let r = post(
        "/api/v1/widget/sessions",
        json!({"site_key": app.site_key, "page_url": "x".repeat(100 * 1024)}).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 413);

    // Origins: a site that lists origins refuses others.
    let locked = app
        .storage
        .create_site("Locked", &["https://shop.example".into()])
        .await
        .unwrap();
    let with_origin = |origin: &str| {
        app.http
            .post(app.url("/api/v1/widget/sessions"))
            .header("origin", origin)
            .json(&json!({"site_key": locked.site_key}))
            .send()
    };
    assert_eq!(
        with_origin("https://evil.example").await.unwrap().status(),
        403
    );
    assert_eq!(
        with_origin("https://shop.example").await.unwrap().status(),
        200
    );
    // The widget frame itself may only be framed by the listed origins.
    let r = app
        .http
        .get(app.url(&format!("/widget/frame?site={}", locked.site_key)))
        .send()
        .await
        .unwrap();
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(csp, "frame-ancestors 'self' https://shop.example");
    // The frame's script reads the first `site`, decoded: so does the header. An encoded name
    // before a plain one (of a site open to any page) must not open the locked site's frame to
    // any page.
    let open = app.storage.create_site("Open", &[]).await.unwrap();
    let r = app
        .http
        .get(app.url(&format!(
            "/widget/frame?sit%65={}&site={}",
            locked.site_key, open.site_key
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-security-policy"].to_str().unwrap(),
        "frame-ancestors 'self' https://shop.example"
    );

    let r = app
        .http
        .get(app.url("/api/v1/conversations"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .http
        .get(app.url("/api/v1/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn agents_log_in_with_a_session_cookie() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let login = |email: &str, password: &str| {
        client
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
    };
    let r = login(&app.admin_email, "wrong").await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        client
            .get(app.url("/api/v1/me"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    let r = login(&app.admin_email, &app.admin_password).await.unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let me: Value = client
        .get(app.url("/api/v1/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["agent"]["email"], "admin@example.com");
    assert_eq!(me["agent"]["role"], "admin");

    // With the cookie, a page of another host (even of the same site, which SameSite=Lax lets
    // through) may not act or open the agent socket; the console's own pages may.
    let try_it = |origin: String| {
        client
            .post(app.url(&format!("/api/v1/sites/{}/bot/try", app.site_id)))
            .header("origin", origin)
            .json(&json!({"text": "hello"}))
            .send()
    };
    let r = try_it("http://shop.localhost".into()).await.unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("http://shop.localhost"), "{message}");
    assert_eq!(try_it(app.base.clone()).await.unwrap().status(), 200);
    let upgrade = |origin: &str| {
        client
            .get(app.url("/ws/agent"))
            .header("origin", origin)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .send()
    };
    assert_eq!(
        upgrade("http://shop.localhost").await.unwrap().status(),
        403
    );
    assert_eq!(upgrade(&app.base).await.unwrap().status(), 101);

    let r = client
        .post(app.url("/api/v1/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        client
            .get(app.url("/api/v1/me"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    // Guessing is throttled.
    for _ in 0..5 {
        login("admin@example.com", "guess").await.unwrap();
    }
    let r = login(&app.admin_email, &app.admin_password).await.unwrap();
    assert_eq!(r.status(), 429);
}

#[tokio::test]
async fn behind_a_proxy_one_guesser_does_not_lock_out_everyone() {
    let app = spawn_app().await;
    // The test client connects from 127.0.0.1, as a reverse proxy on this machine would.
    let login = |from: &str, email: &str, password: &str| {
        app.http
            .post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", from)
            .json(&json!({"email": email, "password": password}))
            .send()
    };
    for i in 0..5 {
        let r = login("203.0.113.5", &format!("guess{i}@example.com"), "x")
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    // The guesser's own address is locked out...
    let r = login("203.0.113.5", &app.admin_email, &app.admin_password)
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    // ...and nobody else behind the same proxy is.
    let r = login("198.51.100.7", &app.admin_email, &app.admin_password)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn conversations_are_assigned_round_robin_among_online_agents() {
    let app = spawn_app().await;
    let mut admin = app.agent_ws().await;
    let mut assignees = Vec::new();
    for i in 0..2 {
        let v = app.visitor().await;
        let mut tab = v.ws().await;
        tab.say(&format!("c{i}"), "hi").await;
        tab.ack().await;
        let c = admin
            .until(|f| match f {
                ServerFrame::Conversation { conversation } => Some(conversation),
                _ => None,
            })
            .await;
        assignees.push(c.assignee_id);
    }
    // One agent online: both go to the admin.
    let me: Value = app.agent_json("/api/v1/me").await;
    let admin_id = me["agent"]["id"].as_str().unwrap().to_owned();
    assert_eq!(assignees, vec![Some(admin_id.clone()), Some(admin_id)]);

    // Resolving is visible to every console.
    let list: Value = app.agent_json("/api/v1/conversations").await;
    // The list carries who each visitor is and the last message, for the console.
    for c in list["conversations"].as_array().unwrap() {
        assert_eq!(c["visitor"]["page_url"], "https://shop.example/p/1");
        assert_eq!(c["last_message"]["body"], "hi");
        assert_eq!(c["unread"], 1);
    }
    let first = list["conversations"][0]["id"].as_str().unwrap().to_owned();
    let r = app
        .agent_post(&format!("/api/v1/conversations/{first}/status"))
        .json(&json!({"status": "resolved"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let c = admin
        .until(|f| match f {
            ServerFrame::Conversation { conversation } if conversation.id == first => {
                Some(conversation)
            }
            _ => None,
        })
        .await;
    assert_eq!(c.status, kefu::ConversationStatus::Resolved);
}

#[tokio::test]
async fn shutdown_closes_sockets_with_going_away_and_keeps_what_was_acked() {
    let mut app = spawn_app().await;
    let visitor = app.visitor().await;
    let mut tab = visitor.ws().await;
    tab.say("s1", "before shutdown").await;
    let acked = tab.ack().await;
    app.shutdown().await;
    assert_eq!(tab.closed().await.map(u16::from), Some(1001));
    let messages = app
        .storage
        .messages_after(&acked.conversation_id, 0, 10, true)
        .await
        .unwrap();
    assert_eq!(messages, vec![acked]);
}

#[tokio::test]
async fn a_console_that_stops_reading_is_closed_and_catches_up_by_resume() {
    let app = spawn_app_with(|s| {
        s.limits.conn_queue = 8;
        s.limits.visitor_msgs_per_sec = 1e6;
        s.limits.visitor_burst = 1e6;
        s.limits.conn_frames_per_sec = 1e6;
        s.limits.conn_frame_burst = 1e6;
    })
    .await;
    let mut agent = app.agent_ws().await;
    let visitor = app.visitor().await;
    let mut tab = visitor.ws().await;
    // The console reads nothing while the visitor sends far more than the socket buffers
    // and the queue hold.
    let body = "x".repeat(3900);
    let total = 3000;
    let mut acked = Vec::new();
    for batch in 0..total / 50 {
        for i in 0..50 {
            tab.say(&format!("m{batch}-{i}"), &body).await;
        }
        for _ in 0..50 {
            acked.push(tab.ack().await);
        }
    }
    let conv = acked[0].conversation_id.clone();

    // Now it reads: a prefix of the messages, in order, then a close telling it to resume.
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout(
            EVENT_TIMEOUT,
            futures_util::StreamExt::next(&mut agent.stream),
        )
        .await
        .expect("the server neither sent nor closed")
        {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                if let ServerFrame::Message { message } = serde_json::from_str(t.as_str()).unwrap()
                {
                    seen.push(message.seq);
                }
            }
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame))) => {
                assert_eq!(frame.map(|f| u16::from(f.code)), Some(1013));
                break;
            }
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
    assert!(
        seen.len() < total,
        "the slow console must have been cut off"
    );
    let expected_prefix: Vec<u64> = (1..=seen.len() as u64).collect();
    assert_eq!(
        seen, expected_prefix,
        "what arrived is in order, without gaps"
    );

    // It reconnects and resumes: exactly the rest, in order.
    let mut agent = app.agent_ws().await;
    let after = seen.last().copied().unwrap_or(0);
    agent
        .send(json!({"type": "resume", "conversation_id": conv, "after_seq": after}))
        .await;
    let mut rest = Vec::new();
    loop {
        match agent.next().await {
            ServerFrame::Message { message } => rest.push(message.seq),
            ServerFrame::CaughtUp { last_seq, .. } => {
                assert_eq!(last_seq, total as u64);
                break;
            }
            _ => {}
        }
    }
    let expected_rest: Vec<u64> = (after + 1..=total as u64).collect();
    assert_eq!(rest, expected_rest);
}

#[tokio::test]
async fn connections_past_the_limit_are_refused_with_the_limit_named() {
    let app = spawn_app_with(|s| s.protocols.websocket.max_conn = 2).await;
    let first = app.visitor().await;
    let _a = first.ws().await;
    let _b = app.agent_ws().await;
    // A third WebSocket, visitor or agent, is refused before the upgrade.
    let second = app.visitor().await;
    let url = format!(
        "{}?token={}",
        app.url("/ws/visitor").replace("http://", "ws://"),
        second.token
    );
    let err = tokio_tungstenite::connect_async(url).await.unwrap_err();
    let tokio_tungstenite::tungstenite::Error::Http(res) = err else {
        panic!("expected an HTTP refusal, got {err:?}");
    };
    assert_eq!(res.status(), 503);
    let body: Value = serde_json::from_slice(res.body().as_deref().unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("limit of 2 open connections"), "{message}");
    // A long-poll waits on a connection too.
    let r = second
        .http
        .get(app.url("/api/v1/widget/events?after_seq=0&wait=1"))
        .bearer_auth(&second.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    // What is already open keeps working.
    let r = app.agent_get("/api/v1/conversations").send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn one_address_cannot_create_visitors_without_end() {
    let app = spawn_app_with(|s| {
        s.limits.new_visitors_per_sec = 0.001;
        s.limits.new_visitor_burst = 3.0;
    })
    .await;
    let mut visitors = Vec::new();
    for _ in 0..3 {
        visitors.push(app.visitor().await);
    }
    let session = |body: Value, from: &'static str| {
        app.http
            .post(app.url("/api/v1/widget/sessions"))
            .header("x-forwarded-for", from)
            .json(&body)
            .send()
    };
    let new = json!({"site_key": app.site_key});
    let r = session(new.clone(), "127.0.0.1").await.unwrap();
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too many new visitors"),
        "{body}"
    );
    // A returning visitor is not a new one...
    let back = json!({"site_key": app.site_key, "visitor_token": visitors[0].token});
    let r = session(back, "127.0.0.1").await.unwrap();
    assert_eq!(r.status(), 200);
    let again: Value = r.json().await.unwrap();
    assert_eq!(again["visitor"]["id"], visitors[0].id);
    // ...and other people behind the same proxy have their own budget.
    let r = session(new, "198.51.100.7").await.unwrap();
    assert_eq!(r.status(), 200);
}
