//! Test helpers: a real server on port 0 with its own SQLite file, and typed clients that speak
//! the protocol over real HTTP and WebSockets.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use kefu::SenderKind;
use kefu::frame::ServerFrame;
use kefu_server::config::Settings;
use kefu_server::storage::{NewAgent, Role, Storage};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message as WsMessage, http::HeaderValue};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long to wait for an event before calling the test failed.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub base: String,
    pub dir: tempfile::TempDir,
    pub site_key: String,
    pub site_id: String,
    pub admin_token: String,
    pub admin_email: String,
    pub admin_password: String,
    pub storage: Arc<dyn Storage>,
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub fn test_settings(dir: &std::path::Path) -> Settings {
    let mut s = Settings::default();
    s.storage.url = format!("sqlite://{}", dir.join("kefu.db").display());
    s.storage.sqlite_synchronous = "normal".into();
    s.bootstrap.disabled = true;
    s.server.site_root = Some(dir.join("site"));
    s
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    tweak(&mut settings);
    let storage = kefu_server::open_storage(&settings).await.unwrap();
    let site = storage.create_site("Test shop", &[]).await.unwrap();
    let admin_password = "admin-password-1".to_owned();
    let admin = storage
        .create_agent(NewAgent {
            email: "admin@example.com".into(),
            name: "Alice Admin".into(),
            password_hash: kefu_server::auth::hash_password(&admin_password).unwrap(),
            role: Role::Admin,
        })
        .await
        .unwrap();
    let admin_token = kefu_server::auth::new_api_token();
    storage
        .create_api_token(&admin.id, &kefu_server::auth::token_hash(&admin_token))
        .await
        .unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(kefu_server::launch(listener, settings, async move {
        let _ = stopped.await;
    }));
    let app = TestApp {
        addr,
        base: format!("http://{addr}"),
        dir,
        site_key: site.site_key,
        site_id: site.id,
        admin_token,
        admin_email: "admin@example.com".into(),
        admin_password,
        storage,
        http: reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .unwrap(),
        stop: Some(stop),
        handle: Some(handle),
    };
    // The listener is already bound, so this waits in the backlog until the server serves.
    let r = app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "server is not healthy");
    app
}

impl TestApp {
    /// A second agent (role `agent`, member of the sites that exist now) and its API token.
    pub async fn add_agent(
        &self,
        email: &str,
        name: &str,
    ) -> (kefu_server::storage::Agent, String) {
        let agent = self
            .storage
            .create_agent(NewAgent {
                email: email.into(),
                name: name.into(),
                password_hash: kefu_server::auth::hash_password("agent-password").unwrap(),
                role: kefu_server::storage::Role::Agent,
            })
            .await
            .unwrap();
        let token = kefu_server::auth::new_api_token();
        self.storage
            .create_api_token(&agent.id, &kefu_server::auth::token_hash(&token))
            .await
            .unwrap();
        (agent, token)
    }

    /// A conversation as stored now.
    pub async fn conversation(&self, id: &str) -> kefu::model::Conversation {
        self.storage.conversation(id).await.unwrap().unwrap()
    }

    /// Stops the server the way SIGTERM does and waits for it to finish.
    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A new visitor on the test site.
    pub async fn visitor(&self) -> Visitor {
        self.visitor_on(&self.site_key.clone()).await
    }

    pub async fn visitor_on(&self, site_key: &str) -> Visitor {
        let r = self
            .http
            .post(self.url("/api/v1/widget/sessions"))
            .header(
                "user-agent",
                "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.0.0 Safari/537.36",
            )
            .json(
                &json!({"site_key": site_key, "page_url": "https://shop.example/p/1",
                          "referrer": "https://search.example/?q=tea", "locale": "zh-CN",
                          "timezone": "Asia/Shanghai", "utc_offset_minutes": 480}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        let v: Value = r.json().await.unwrap();
        Visitor {
            token: v["visitor_token"].as_str().unwrap().to_owned(),
            id: v["visitor"]["id"].as_str().unwrap().to_owned(),
            base: self.base.clone(),
            http: reqwest::Client::new(),
        }
    }

    /// The admin's WebSocket (API token auth).
    pub async fn agent_ws(&self) -> Ws {
        self.agent_ws_with(&self.admin_token.clone()).await
    }

    pub async fn agent_ws_with(&self, token: &str) -> Ws {
        let mut req = format!("ws://{}/ws/agent", self.addr)
            .into_client_request()
            .unwrap();
        req.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        let (stream, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let mut ws = Ws { stream };
        ws.expect_hello("agent").await;
        ws
    }

    pub fn agent_get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(&self.admin_token)
    }

    /// GET `path` as the agent and parse the JSON body.
    /// What the admin's "try it" box shows for `text` on the test site.
    pub async fn bot_try(&self, text: &str) -> Value {
        let r = self
            .agent_post(&format!("/api/v1/sites/{}/bot/try", self.site_id))
            .json(&json!({ "text": text }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    /// Adds one of the test site's own QA pairs: the status and the JSON answer.
    pub async fn add_qa(&self, pair: Value) -> (u16, Value) {
        let r = self
            .agent_post(&format!("/api/v1/sites/{}/qa", self.site_id))
            .json(&pair)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    pub async fn agent_json(&self, path: &str) -> Value {
        self.agent_get(path)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub fn agent_post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .post(self.url(path))
            .bearer_auth(&self.admin_token)
    }
}

/// Serves `router` on 127.0.0.1:0 (a fake webhook service or chat endpoint) and returns its
/// base URL.
pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub struct Visitor {
    pub token: String,
    pub id: String,
    base: String,
    pub http: reqwest::Client,
}

impl Visitor {
    pub async fn ws(&self) -> Ws {
        let url = format!(
            "{}/ws/visitor?token={}",
            self.base.replace("http://", "ws://"),
            self.token
        );
        let (stream, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut ws = Ws { stream };
        ws.expect_hello("visitor").await;
        ws
    }

    pub async fn post(&self, client_msg_id: &str, body: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/api/v1/widget/messages", self.base))
            .bearer_auth(&self.token)
            .json(&json!({"client_msg_id": client_msg_id, "body": body}))
            .send()
            .await
            .unwrap()
    }

    pub async fn events(&self, after_seq: u64, wait: u64) -> Value {
        let r = self
            .http
            .get(format!(
                "{}/api/v1/widget/events?after_seq={after_seq}&wait={wait}",
                self.base
            ))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }
}

pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    pub async fn send_raw(&mut self, text: impl Into<String>) {
        self.stream
            .send(WsMessage::Text(text.into().into()))
            .await
            .unwrap();
    }

    pub async fn send(&mut self, frame: Value) {
        self.send_raw(frame.to_string()).await;
    }

    pub async fn say(&mut self, client_msg_id: &str, body: &str) {
        self.send(json!({"type": "send", "client_msg_id": client_msg_id, "body": body}))
            .await;
    }

    pub async fn say_in(&mut self, conversation_id: &str, client_msg_id: &str, body: &str) {
        self.send(
            json!({"type": "send", "client_msg_id": client_msg_id, "body": body,
                         "conversation_id": conversation_id}),
        )
        .await;
    }

    /// The next frame from the server, or a failure after [`EVENT_TIMEOUT`].
    pub async fn next(&mut self) -> ServerFrame {
        loop {
            let msg = tokio::time::timeout(EVENT_TIMEOUT, self.stream.next())
                .await
                .expect("no frame from the server in time")
                .expect("connection closed")
                .expect("websocket error");
            match msg {
                WsMessage::Text(t) => {
                    return serde_json::from_str(t.as_str()).unwrap_or_else(|e| {
                        panic!("server sent a frame we cannot read: {t}: {e}")
                    });
                }
                WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
                other => panic!("unexpected websocket message {other:?}"),
            }
        }
    }

    /// Skips frames until a conversation update in which the conversation is `open` (an
    /// agent's console learning of a hand-over or a new conversation).
    pub async fn opened(&mut self) -> kefu::Conversation {
        self.until(|f| match f {
            ServerFrame::Conversation { conversation }
                if conversation.status == kefu::ConversationStatus::Open =>
            {
                Some(conversation)
            }
            _ => None,
        })
        .await
    }

    /// Skips frames until one matches.
    pub async fn until<T>(&mut self, mut pick: impl FnMut(ServerFrame) -> Option<T>) -> T {
        loop {
            if let Some(t) = pick(self.next().await) {
                return t;
            }
        }
    }

    pub async fn ack(&mut self) -> kefu::Message {
        match self
            .until(|f| match f {
                ServerFrame::Ack { message, .. } => Some(Ok(message)),
                ServerFrame::Error { code, message, .. } => Some(Err((code, message))),
                _ => None,
            })
            .await
        {
            Ok(m) => m,
            Err(e) => panic!("expected an ack, got error {e:?}"),
        }
    }

    pub async fn message(&mut self) -> kefu::Message {
        self.until(|f| match f {
            ServerFrame::Message { message } => Some(message),
            _ => None,
        })
        .await
    }

    /// The next error frame, skipping others.
    pub async fn error(&mut self) -> (kefu::ErrorCode, String, Option<String>) {
        self.until(|f| match f {
            ServerFrame::Error {
                code,
                message,
                client_msg_id,
            } => Some((code, message, client_msg_id)),
            _ => None,
        })
        .await
    }

    /// The next message from the bot or the system (not the visitor's own).
    pub async fn bot_says(&mut self) -> kefu::Message {
        self.until(|f| match f {
            ServerFrame::Message { message } if message.sender.kind != SenderKind::Visitor => {
                Some(message)
            }
            _ => None,
        })
        .await
    }

    async fn expect_hello(&mut self, kind: &str) {
        match self.next().await {
            ServerFrame::Hello { protocol, you, .. } => {
                assert_eq!(protocol, 1);
                assert_eq!(you.kind.as_str(), kind);
            }
            other => panic!("first frame must be hello, got {other:?}"),
        }
    }

    /// Waits for the server to close the connection and returns the close code.
    pub async fn closed(&mut self) -> Option<CloseCode> {
        loop {
            match tokio::time::timeout(EVENT_TIMEOUT, self.stream.next())
                .await
                .expect("the server did not close the connection in time")
            {
                Some(Ok(WsMessage::Close(frame))) => return frame.map(|f| f.code),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    pub async fn ping(&mut self) {
        self.send(json!({"type": "ping"})).await;
        self.until(|f| matches!(f, ServerFrame::Pong).then_some(()))
            .await;
    }
}
