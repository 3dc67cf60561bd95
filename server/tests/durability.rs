//! The real `kefu` binary, killed with SIGKILL right after an ack: the message is still there.

mod common;

use std::process::{Child, Command, Stdio};

use common::*;
use serde_json::{Value, json};

struct Server {
    child: Child,
    addr: String,
}

fn kefu(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kefu"));
    cmd.env(
        "KEFU__STORAGE__URL",
        format!("sqlite://{}", dir.join("kefu.db").display()),
    )
    .env("KEFU__BOOTSTRAP__DISABLED", "true")
    .env("KEFU__SERVER__SITE_ROOT", dir.join("site"))
    .env("KEFU_LOG", "info")
    .current_dir(dir);
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start(dir: &std::path::Path) -> Server {
    let port = free_port();
    let mut child = kefu(dir)
        .arg("serve")
        .env("KEFU__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_listening(&mut child);
    Server {
        child,
        addr: format!("127.0.0.1:{port}"),
    }
}

/// Reads the server's log until it says it is listening (the log goes on being drained).
fn wait_listening(child: &mut Child) {
    use std::io::BufRead;
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains("kefu listening")
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(EVENT_TIMEOUT)
        .expect("kefu did not start listening");
}

#[tokio::test]
async fn a_message_acked_before_kill_9_is_there_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    // Set up with the CLI, as a script would, before the first serve.
    let out = kefu(dir.path())
        .args(["site", "add", "--name", "Shop"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let site_key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(site_key.starts_with("site_"));
    let out = kefu(dir.path())
        .args([
            "user",
            "add",
            "--email",
            "ops@example.com",
            "--password",
            "ops-password",
            "--role",
            "admin",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = kefu(dir.path())
        .args(["token", "create", "--email", "ops@example.com"])
        .output()
        .unwrap();
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("kefu_"));

    let mut server = start(dir.path()).await;
    let http = reqwest::Client::new();
    let session: Value = http
        .post(format!("http://{}/api/v1/widget/sessions", server.addr))
        .json(&json!({"site_key": site_key}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let visitor_token = session["visitor_token"].as_str().unwrap().to_owned();
    let (stream, _) = tokio_tungstenite::connect_async(format!(
        "ws://{}/ws/visitor?token={visitor_token}",
        server.addr
    ))
    .await
    .unwrap();
    let mut tab = Ws { stream };
    tab.next().await; // hello
    let mut acked = Vec::new();
    for i in 0..20 {
        tab.say(&format!("k{i}"), &format!("message {i}")).await;
    }
    for _ in 0..20 {
        acked.push(tab.ack().await);
    }
    // SIGKILL the moment the last ack arrived: no chance to flush anything.
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    let mut server = start(dir.path()).await;
    let conv = &acked[0].conversation_id;
    let history: Value = http
        .get(format!(
            "http://{}/api/v1/conversations/{conv}/messages?after_seq=0",
            server.addr
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stored: Vec<kefu::Message> = serde_json::from_value(history["messages"].clone()).unwrap();
    assert_eq!(stored, acked);
    // The same visitor token still works, and a retry is still recognised after the restart.
    let r = http
        .post(format!("http://{}/api/v1/widget/messages", server.addr))
        .bearer_auth(&visitor_token)
        .json(&json!({"client_msg_id": "k19", "body": "message 19"}))
        .send()
        .await
        .unwrap();
    let again: Value = r.json().await.unwrap();
    assert_eq!(again["message"]["id"], acked[19].id.as_str());
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

#[tokio::test]
async fn the_first_start_creates_an_admin_and_a_site_and_prints_them_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = kefu(dir.path())
        .env_remove("KEFU__BOOTSTRAP__DISABLED")
        .env("KEFU__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::BufRead;
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let mut text = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        text.push_str(&line);
        text.push('\n');
        if line.contains("/demo") {
            break;
        }
    }
    assert!(text.contains("email:    admin@kefu.local"), "{text}");
    let password = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("password: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    assert!(text.contains("data-site=\"site_"), "{text}");
    let login = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/api/v1/auth/login"))
        .json(&json!({"email": "admin@kefu.local", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    child.kill().unwrap();
    child.wait().unwrap();

    // The second start prints nothing of the sort.
    let port = free_port();
    let out = kefu(dir.path())
        .env_remove("KEFU__BOOTSTRAP__DISABLED")
        .env("KEFU__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = out;
    wait_listening(&mut out);
    // SIGTERM: a graceful stop, then read everything it printed.
    let pid = out.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let output = out.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(!printed.contains("password"), "{printed}");
}
