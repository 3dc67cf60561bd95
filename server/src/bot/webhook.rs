//! The webhook engine: an external service decides. Each message is POSTed as JSON, signed with
//! HMAC-SHA256 over the raw body (`X-Kefu-Signature: sha256=<hex>`); the service answers
//! `{"intent": "…", "confidence": 0.9, "answer": "…", "handoff": false}`. A timeout, an error
//! status or an unreadable answer hands the conversation to a person. An answer whose confidence
//! is below the site's threshold is not understood, as a retrieval match below it: not shown,
//! and two such turns in a row hand over.

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{
    BotContext, BotEngine, HandoffWords, Intent, Response, WebhookSettings, answer_or_fallback,
    entities, text,
};

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Kefu-Signature";

/// `sha256=<hex HMAC-SHA256 of body with secret>`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a signature header in constant time (for services written in Rust, and tests).
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// What the service receives.
#[derive(Debug, Serialize, Deserialize)]
pub struct WebhookRequest {
    pub message: String,
    pub conversation_id: Option<String>,
    /// The detected language of the message (`en`, `zh-CN`).
    pub lang: String,
    pub packs: Vec<String>,
    pub entities: std::collections::BTreeMap<String, String>,
}

/// What the service answers. Everything is optional; no answer means hand over.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WebhookReply {
    pub intent: Option<String>,
    pub confidence: Option<f32>,
    pub answer: Option<String>,
    pub handoff: bool,
}

pub struct WebhookEngine {
    client: reqwest::Client,
    url: String,
    /// The URL without its query (which may carry a token), for logs.
    log_url: String,
    secret: super::Secret,
    timeout: std::time::Duration,
    handoff: HandoffWords,
}

impl WebhookEngine {
    pub fn new(settings: &WebhookSettings, handoff: HandoffWords) -> anyhow::Result<Self> {
        anyhow::ensure!(
            settings.url.starts_with("http://") || settings.url.starts_with("https://"),
            "bot.webhook.url must be an http(s) URL, got {:?}",
            settings.url
        );
        Ok(WebhookEngine {
            client: reqwest::Client::builder()
                .timeout(settings.timeout())
                .build()?,
            url: settings.url.clone(),
            log_url: super::url_for_log(&settings.url),
            secret: settings.secret.clone(),
            timeout: settings.timeout(),
            handoff,
        })
    }

    async fn call(&self, body: Vec<u8>) -> anyhow::Result<WebhookReply> {
        let send = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                SIGNATURE_HEADER,
                sign(self.secret.expose().as_bytes(), &body),
            )
            .body(body)
            .send();
        // reqwest's own timeout covers the body too; this one also bounds connecting.
        let res = tokio::time::timeout(self.timeout, async {
            let res = send.await?.error_for_status()?;
            res.json::<WebhookReply>().await
        })
        .await
        .map_err(|_| anyhow::anyhow!("timed out after {:?}", self.timeout))?
        // reqwest's errors name the URL, query and all: not for the logs.
        .map_err(reqwest::Error::without_url)?;
        Ok(res)
    }
}

#[async_trait]
impl BotEngine for WebhookEngine {
    #[tracing::instrument(skip_all, fields(conversation = ?ctx.conversation_id))]
    async fn understand(&self, ctx: &BotContext, message: &str) -> Intent {
        let lang = text::detect(message);
        let found = entities::extract(message, &[]);
        if self.handoff.matches(message) {
            return Intent::handoff(lang, found);
        }
        let req = WebhookRequest {
            message: message.to_owned(),
            conversation_id: ctx.conversation_id.clone(),
            lang: lang.to_owned(),
            packs: ctx.packs.clone(),
            entities: found.clone(),
        };
        let body = serde_json::to_vec(&req).expect("a request serializes");
        match self.call(body).await {
            Ok(reply) => {
                let handoff = reply.handoff || reply.answer.as_deref().is_none_or(str::is_empty);
                let confidence = reply.confidence.unwrap_or(1.0).clamp(0.0, 1.0);
                if !handoff && confidence < ctx.threshold {
                    // Not understood, as a retrieval match below the threshold: no answer,
                    // and it counts toward the two-strikes rule.
                    return Intent::unknown(lang, found, confidence);
                }
                Intent {
                    name: reply.intent.unwrap_or_else(|| {
                        if handoff {
                            Intent::HANDOFF.to_owned()
                        } else {
                            "webhook".to_owned()
                        }
                    }),
                    confidence,
                    entities: found,
                    lang: lang.to_owned(),
                    answer: reply.answer,
                    handoff,
                    declined: false,
                }
            }
            Err(e) => {
                tracing::warn!(url = %self.log_url, "bot webhook failed, handing over: {e:#}");
                Intent::handoff(lang, found)
            }
        }
    }

    async fn respond(&self, _ctx: &BotContext, intent: &Intent) -> Response {
        answer_or_fallback(intent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures() {
        let sig = sign(b"key", b"The quick brown fox jumps over the lazy dog");
        // The HMAC-SHA256 test vector from RFC 4231's style examples (Wikipedia).
        assert_eq!(
            sig,
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        assert!(verify(
            b"key",
            b"The quick brown fox jumps over the lazy dog",
            &sig
        ));
        assert!(!verify(
            b"other",
            b"The quick brown fox jumps over the lazy dog",
            &sig
        ));
        assert!(!verify(b"key", b"body", "sha1=00"));
    }
}
