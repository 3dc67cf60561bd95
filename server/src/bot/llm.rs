//! The LLM engine: any OpenAI-compatible chat-completions endpoint answers, given only the
//! pairs the retrieval engine finds closest to the message. It is told to answer from them alone
//! and to reply exactly `HANDOFF` when they do not answer the question. That reply (also when
//! the model wraps it in other words) means not understood, as a retrieval match below the
//! threshold: nothing of it is shown, and two in a row hand over. A timeout or an error hands
//! the conversation to a person at once.

use std::fmt::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use super::{
    BotContext, BotEngine, Intent, LlmSettings, Response, RetrievalEngine, answer_or_fallback,
    entities,
};

/// What the model replies when it cannot answer from the pairs.
pub const HANDOFF_REPLY: &str = "HANDOFF";

pub struct LlmEngine {
    client: reqwest::Client,
    url: String,
    /// `url` without a query, for logs.
    log_url: String,
    model: String,
    api_key: super::Secret,
    timeout: std::time::Duration,
    context_pairs: usize,
    retrieval: Arc<RetrievalEngine>,
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChatMessage,
}

#[derive(Deserialize)]
struct ChatMessage {
    #[serde(default)]
    content: Option<String>,
}

impl LlmEngine {
    pub fn new(settings: &LlmSettings, retrieval: Arc<RetrievalEngine>) -> anyhow::Result<Self> {
        anyhow::ensure!(
            settings.base_url.starts_with("http://") || settings.base_url.starts_with("https://"),
            "bot.llm.base_url must be an http(s) URL, got {:?}",
            settings.base_url
        );
        anyhow::ensure!(!settings.model.is_empty(), "bot.llm.model is not set");
        let url = format!(
            "{}/chat/completions",
            settings.base_url.trim_end_matches('/')
        );
        Ok(LlmEngine {
            client: reqwest::Client::builder()
                .timeout(settings.timeout())
                .build()?,
            log_url: super::url_for_log(&url),
            url,
            model: settings.model.clone(),
            api_key: settings.api_key.clone(),
            timeout: settings.timeout(),
            context_pairs: settings.context_pairs.max(1),
            retrieval,
        })
    }

    /// The system prompt: the rules, then the pairs.
    pub fn system_prompt(pairs: &[(&str, &str)]) -> String {
        let mut p = String::from(
            "You are the customer-service assistant of this website. Answer the visitor's \
             message using only the question-and-answer pairs below; do not add facts that are \
             not in them. Reply in the visitor's language, briefly and politely. If the pairs do \
             not answer the message, or the visitor asks for a person, reply exactly HANDOFF \
             and nothing else.\n",
        );
        for (i, (q, a)) in pairs.iter().enumerate() {
            let _ = write!(p, "\n[{}] Q: {q}\nA: {a}\n", i + 1);
        }
        p
    }

    async fn complete(&self, system: String, message: &str) -> anyhow::Result<String> {
        let body = serde_json::json!({
            "model": self.model,
            "temperature": 0,
            // An answer is at most a message long (4,000 characters); this bounds the cost too.
            "max_tokens": 1024,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": message},
            ],
        });
        let mut req = self.client.post(&self.url).json(&body);
        if !self.api_key.expose().is_empty() {
            req = req.bearer_auth(self.api_key.expose());
        }
        let completion = tokio::time::timeout(self.timeout, async {
            let res = req.send().await?.error_for_status()?;
            res.json::<Completion>().await
        })
        .await
        .map_err(|_| anyhow::anyhow!("timed out after {:?}", self.timeout))?
        // reqwest's errors name the URL, query and all: not for the logs.
        .map_err(reqwest::Error::without_url)?;
        completion
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .ok_or_else(|| anyhow::anyhow!("the completion has no message content"))
    }
}

/// Whether the model's reply says it cannot answer: empty, `HANDOFF` alone (in any case), or
/// `HANDOFF` as a word anywhere in it, as models write it after an apology or on a line of its
/// own. Such a reply is never shown.
fn is_handoff_reply(reply: &str) -> bool {
    let bare = reply.trim_matches(|c: char| !c.is_alphanumeric());
    bare.is_empty()
        || bare.eq_ignore_ascii_case(HANDOFF_REPLY)
        || reply
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|word| word == HANDOFF_REPLY)
}

#[async_trait]
impl BotEngine for LlmEngine {
    #[tracing::instrument(skip_all, fields(conversation = ?ctx.conversation_id))]
    async fn understand(&self, ctx: &BotContext, message: &str) -> Intent {
        let found = self
            .retrieval
            .search(&ctx.packs, message, self.context_pairs);
        let r = &self.retrieval;
        let top = found.hits.first().map(|h| &r.pair_at(h.pair).qa);
        let ents = entities::extract(message, top.map_or(&[], |qa| &qa.entities));
        if r.handoff_words().matches(message) {
            return Intent::handoff(&found.lang, ents);
        }
        // Nothing to answer from, or closest to an example of what is not answered here: not
        // understood, or declined, as the retrieval engine says it.
        match top {
            None => return Intent::unknown(&found.lang, ents, 0.0),
            Some(qa) if qa.decline => return Intent::declined(&found.lang, ents),
            Some(_) => {}
        }
        let answers: Vec<(String, String)> = found
            .hits
            .iter()
            .filter(|h| !r.pair_at(h.pair).qa.decline)
            .map(|h| {
                let p = r.pair_at(h.pair);
                (
                    p.qa.questions
                        .iter()
                        .take(3)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(" / "),
                    entities::fill(&p.qa.answer, &ents),
                )
            })
            .collect();
        let refs: Vec<(&str, &str)> = answers
            .iter()
            .map(|(q, a)| (q.as_str(), a.as_str()))
            .collect();
        let top = r.pair_at(found.hits[0].pair);
        match self.complete(Self::system_prompt(&refs), message).await {
            Ok(reply) if !is_handoff_reply(&reply) => Intent {
                name: top.qa.id.clone(),
                confidence: found.confidence,
                entities: ents,
                lang: found.lang,
                answer: Some(reply.trim().to_owned()),
                handoff: false,
                declined: false,
            },
            // The model's "cannot answer from these pairs".
            Ok(_) => Intent::unknown(&found.lang, ents, found.confidence),
            Err(e) => {
                tracing::warn!(url = %self.log_url, "bot LLM call failed, handing over: {e:#}");
                Intent::handoff(&found.lang, ents)
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
    fn recognizes_handoff_replies() {
        for reply in [
            "HANDOFF",
            " handoff.\n",
            "\"HANDOFF\"",
            "",
            "  \n",
            "抱歉，我无法回答。HANDOFF",
            "抱歉HANDOFF",
            "HANDOFF - the pairs do not cover this.",
            "I'm sorry, I can't help with that.\nHANDOFF",
            "I'm sorry, I can't help with that.\n\nHANDOFF\n\nPlease wait.",
            "Sorry! [HANDOFF]",
            "**HANDOFF**",
            "__HANDOFF__",
        ] {
            assert!(is_handoff_reply(reply), "{reply:?}");
        }
        for reply in [
            "You can return items within 7 days.",
            "退货请在7天内申请。",
            "HANDOFFS are not a word we use",
            "The courier's handoff happens at your door.",
            "HAND_OFF_TIME is 5pm",
        ] {
            assert!(!is_handoff_reply(reply), "{reply:?}");
        }
    }

    #[test]
    fn prompt_lists_the_pairs() {
        let p = LlmEngine::system_prompt(&[("How do I return?", "Within 7 days.")]);
        assert!(p.contains("HANDOFF"));
        assert!(p.contains("[1] Q: How do I return?\nA: Within 7 days."));
    }
}
