//! The bot's admin API: per-site configuration, the site's own QA pairs, import, "try it",
//! and the questions the bot could not answer. Reading needs membership of the site;
//! changing needs an admin.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::AuthAgent;
use super::error::{ApiError, ApiJson};
use crate::AppState;
use crate::assistant::{BotConfig, SITE_PACK};
use crate::storage::{Agent, Role, Site, SiteQa};

async fn site_for(
    state: &AppState,
    agent: &Agent,
    site_id: &str,
    admin: bool,
) -> Result<Site, ApiError> {
    let storage = state.hub.storage();
    let site = storage
        .site(site_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no site {site_id}")))?;
    if admin && agent.role != Role::Admin {
        return Err(ApiError::forbidden("only admins can change the bot"));
    }
    if !storage.agent_site_ids(agent).await?.contains(&site.id) {
        return Err(ApiError::forbidden("you are not a member of this site"));
    }
    Ok(site)
}

#[derive(Serialize)]
struct SiteOut {
    id: String,
    name: String,
    site_key: String,
    allowed_origins: Vec<String>,
}

/// `GET /api/v1/sites`
pub async fn sites(
    State(state): State<AppState>,
    AuthAgent(agent): AuthAgent,
) -> Result<Response, ApiError> {
    let storage = state.hub.storage();
    let mine = storage.agent_site_ids(&agent).await?;
    let sites: Vec<SiteOut> = storage
        .sites()
        .await?
        .into_iter()
        .filter(|s| mine.contains(&s.id))
        .map(|s| SiteOut {
            id: s.id,
            name: s.name,
            site_key: s.site_key,
            allowed_origins: s.allowed_origins,
        })
        .collect();
    Ok(Json(json!({ "sites": sites })).into_response())
}

/// `GET /api/v1/sites/{id}/bot`
pub async fn get_config(
    State(state): State<AppState>,
    AuthAgent(agent): AuthAgent,
    Path(site_id): Path<String>,
) -> Result<Response, ApiError> {
    let site = site_for(&state, &agent, &site_id, false).await?;
    Ok(Json(json!({ "bot": BotConfig::parse(&site.bot).redacted() })).into_response())
}

/// `PUT /api/v1/sites/{id}/bot`
pub async fn put_config(
    State(state): State<AppState>,
    AuthAgent(agent): AuthAgent,
    Path(site_id): Path<String>,
    ApiJson(update): ApiJson<BotConfig>,
) -> Result<Response, ApiError> {
    let site = site_for(&state, &agent, &site_id, true).await?;
    let config = BotConfig::parse(&site.bot)
        .merge_update(update)
        .map_err(ApiError::bad_request)?;
    let stored = serde_json::to_string(&config).expect("config serializes");
    state.hub.storage().set_site_bot(&site.id, &stored).await?;
    state.hub.assistant().invalidate(&site.id);
    Ok(Json(json!({ "bot": config.redacted() })).into_response())
}

/// `GET /api/v1/bot/packs`
pub async fn packs(State(state): State<AppState>, AuthAgent(_): AuthAgent) -> Response {
    let assistant = state.hub.assistant().clone();
    let packs = tokio::task::spawn_blocking(move || {
        assistant
            .packs()
            .iter()
            .map(|p| {
                json!({
                    "pack": p.name,
                    "title": p.title,
                    "languages": p.languages.iter().map(|l| l.lang.clone()).collect::<Vec<_>>(),
                    "qa_pairs": p.pair_count(),
                })
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    Json(json!({ "packs": packs })).into_response()
}

/// A text the bot reads or says: 1 to `MAX_BODY_CHARS` characters, like a message.
fn check_length(what: &str, text: &str) -> Result<(), ApiError> {
    let max = kefu::validate::MAX_BODY_CHARS;
    if text.is_empty() || text.chars().count() > max {
        return Err(ApiError::bad_request(format!(
            "{what} must be 1 to {max} characters"
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
pub struct TryBody {
    text: String,
}

/// `POST /api/v1/sites/{id}/bot/try`: what the bot would answer, without a conversation.
pub async fn try_it(
    State(state): State<AppState>,
    AuthAgent(agent): AuthAgent,
    Path(site_id): Path<String>,
    ApiJson(body): ApiJson<TryBody>,
) -> Result<Response, ApiError> {
    let site = site_for(&state, &agent, &site_id, false).await?;
    let text = body.text.trim();
    check_length("text", text)?;
    let bot = state
        .hub
        .assistant()
        .for_site(state.hub.storage(), &site.id)
        .await
        .map_err(|e| ApiError::unavailable(format!("the bot could not start: {e}")))?;
    let ctx = bot.context(None);
    let intent = bot.engine.understand(&ctx, text).await;
    let reply = bot.engine.respond(&ctx, &intent).await;
    Ok(Json(json!({
        "intent": intent.name,
        "confidence": (intent.confidence * 1000.0).round() / 1000.0,
        "entities": intent.entities,
        "answer": reply.text,
        "handoff": reply.handoff || intent.handoff,
        "quick_replies": reply.quick_replies,
    }))
    .into_response())
}

#[derive(Serialize)]
struct QaOut {
    id: String,
    lang: String,
    questions: Vec<String>,
    answer: String,
    quick_replies: Vec<String>,
    handoff: bool,
    /// An example of what is not answered (see `corpus/README.md`), not an answer.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    decline: bool,
    source: String,
}

#[derive(Deserialize)]
pub struct QaQuery {
    #[serde(default)]
    q: String,
    limit: Option<usize>,
    #[serde(default)]
    offset: usize,
}

/// `GET /api/v1/sites/{id}/qa?q=…`: the site's own pairs first, then those of its packs.
pub async fn qa_list(
    State(state): State<AppState>,
    AuthAgent(agent): AuthAgent,
    Path(site_id): Path<String>,
    Query(q): Query<QaQuery>,
) -> Result<Response, ApiError> {
    let site = site_for(&state, &agent, &site_id, false).await?;
    let config = BotConfig::parse(&site.bot);
    let own = state.hub.storage().qa_list(&site.id).await?;
    let needle = q.q.trim().to_lowercase();
    let hit = |questions: &[String], answer: &str, id: &str| {
        needle.is_empty()
            || id.to_lowercase().contains(&needle)
            || answer.to_lowercase().contains(&needle)
            || questions.iter().any(|x| x.to_lowercase().contains(&needle))
    };
    let mut all: Vec<QaOut> = own
        .into_iter()
        .filter(|p| hit(&p.questions, &p.answer, &p.id))
        .map(|p| QaOut {
            id: p.id,
            lang: p.lang,
            questions: p.questions,
            answer: p.answer,
            quick_replies: p.quick_replies,
            handoff: p.handoff,
            decline: false,
            source: SITE_PACK.into(),
        })
        .collect();
    for pack in state.hub.assistant().packs() {
        if !config.packs.is_empty() && !config.packs.contains(&pack.name) {
            continue;
        }
        for lang in &pack.languages {
            for p in &lang.qa {
                if hit(&p.questions, &p.answer, &p.id) {
                    all.push(QaOut {
                        id: p.id.clone(),
                        lang: lang.lang.clone(),
                        questions: p.questions.clone(),
                        answer: p.answer.clone(),
                        quick_replies: p.quick_replies.clone(),
                        handoff: p.handoff,
                        decline: p.decline,
                        source: format!("pack:{}", pack.name),
                    });
                }
            }
        }
    }
    let total = all.len();
    let qa: Vec<QaOut> = all
        .into_iter()
        .skip(q.offset)
        .take(q.limit.unwrap_or(50).min(500))
        .collect();
    Ok(Json(json!({ "qa": qa, "total": total })).into_response())
}

fn check_qa(qa: &mut SiteQa) -> Result<(), ApiError> {
    qa.questions = qa
        .questions
        .iter()
        .map(|q| q.trim().to_owned())
        .filter(|q| !q.is_empty())
        .collect();
    qa.answer = qa.answer.trim().to_owned();
    if qa.questions.is_empty() {
        return Err(ApiError::bad_request(
            "a QA pair needs at least one question",
        ));
    }
    check_length("answer", &qa.answer)?;
    if qa.lang != "en" && qa.lang != "zh-CN" {
        return Err(ApiError::bad_request(format!(
            "lang must be en or zh-CN, got {:?}",
            qa.lang
        )));
    }
    qa.quick_replies.truncate(3);
    Ok(())
}

fn qa_out(qa: SiteQa) -> serde_json::Value {
    json!({ "qa": {
        "id": qa.id, "lang": qa.lang, "questions": qa.questions, "answer": qa.answer,
        "quick_replies": qa.quick_replies, "handoff": qa.handoff, "source": SITE_PACK,
    }})
}

/// `POST /api/v1/sites/{id}/qa`
pub async fn qa_create(
    State(state): State<AppState>,
    AuthAgent(agent): AuthAgent,
    Path(site_id): Path<String>,
    ApiJson(mut qa): ApiJson<SiteQa>,
) -> Result<Response, ApiError> {
    let site = site_for(&state, &agent, &site_id, true).await?;
    check_qa(&mut qa)?;
    qa.id = String::new();
    let saved = state.hub.storage().qa_save(&site.id, qa).await?;
    state.hub.assistant().invalidate(&site.id);
    Ok((StatusCode::CREATED, Json(qa_out(saved))).into_response())
}

/// `PUT /api/v1/sites/{id}/qa/{qa_id}`
pub async fn qa_update(
    State(state): State<AppState>,
    AuthAgent(agent): AuthAgent,
    Path((site_id, qa_id)): Path<(String, String)>,
    ApiJson(mut qa): ApiJson<SiteQa>,
) -> Result<Response, ApiError> {
    let site = site_for(&state, &agent, &site_id, true).await?;
    check_qa(&mut qa)?;
    qa.id = qa_id;
    let saved = state
        .hub
        .storage()
        .qa_save(&site.id, qa)
        .await
        .map_err(|e| match e {
            crate::storage::StorageError::NotFound => ApiError::not_found(
                "no such QA pair of this site (pairs of built-in packs are read-only)",
            ),
            e => e.into(),
        })?;
    state.hub.assistant().invalidate(&site.id);
    Ok(Json(qa_out(saved)).into_response())
}

/// `DELETE /api/v1/sites/{id}/qa/{qa_id}`
pub async fn qa_delete(
    State(state): State<AppState>,
    AuthAgent(agent): AuthAgent,
    Path((site_id, qa_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let site = site_for(&state, &agent, &site_id, true).await?;
    if !state.hub.storage().qa_delete(&site.id, &qa_id).await? {
        return Err(ApiError::not_found("no such QA pair of this site"));
    }
    state.hub.assistant().invalidate(&site.id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/v1/sites/{id}/qa/import`: CSV (`question,answer[,id]` with a header) or a pack
/// language file in the corpus JSON format.
pub async fn qa_import(
    State(state): State<AppState>,
    AuthAgent(agent): AuthAgent,
    Path(site_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let site = site_for(&state, &agent, &site_id, true).await?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the file is not UTF-8 text"))?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"))
        || text.trim_start().starts_with('{');
    let pairs = if is_json {
        import_json(text)?
    } else {
        import_csv(text)?
    };
    let n = pairs.len();
    for mut qa in pairs {
        check_qa(&mut qa)?;
        state.hub.storage().qa_save(&site.id, qa).await?;
    }
    state.hub.assistant().invalidate(&site.id);
    Ok(Json(json!({ "imported": n })).into_response())
}

fn import_json(text: &str) -> Result<Vec<SiteQa>, ApiError> {
    let lang: crate::bot::corpus::PackLang = serde_json::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("not a pack language file: {e}")))?;
    Ok(lang
        .qa
        .into_iter()
        .map(|p| SiteQa {
            id: String::new(),
            lang: lang.lang.clone(),
            questions: p.questions,
            answer: p.answer,
            quick_replies: p.quick_replies,
            handoff: p.handoff,
        })
        .collect())
}

/// Rows with the same id (or, without ids, the same answer) become one pair.
pub fn import_csv(text: &str) -> Result<Vec<SiteQa>, ApiError> {
    let mut rows = parse_csv(text).into_iter();
    let header: Vec<String> = rows
        .next()
        .ok_or_else(|| ApiError::bad_request("the CSV file is empty"))?
        .into_iter()
        .map(|h| h.trim().to_lowercase())
        .collect();
    let col = |name: &str| header.iter().position(|h| h == name);
    let (Some(qi), Some(ai)) = (col("question"), col("answer")) else {
        return Err(ApiError::bad_request(
            "the CSV header must name the columns question and answer (and optionally id, lang)",
        ));
    };
    let (idi, li) = (col("id"), col("lang"));
    let mut order: Vec<String> = Vec::new();
    let mut pairs: std::collections::HashMap<String, SiteQa> = Default::default();
    for (n, row) in rows.enumerate() {
        let get = |i: usize| row.get(i).map(|s| s.trim().to_owned()).unwrap_or_default();
        let (q, a) = (get(qi), get(ai));
        if q.is_empty() && a.is_empty() {
            continue;
        }
        if q.is_empty() {
            return Err(ApiError::bad_request(format!(
                "row {}: empty question",
                n + 2
            )));
        }
        let key = idi
            .map(get)
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| a.clone());
        let lang = li.map(get).filter(|l| !l.is_empty()).unwrap_or_else(|| {
            if q.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)) {
                "zh-CN".into()
            } else {
                "en".into()
            }
        });
        let entry = pairs.entry(key.clone()).or_insert_with(|| {
            order.push(key.clone());
            SiteQa {
                id: String::new(),
                lang,
                questions: Vec::new(),
                answer: a.clone(),
                quick_replies: Vec::new(),
                handoff: false,
            }
        });
        if entry.answer.is_empty() {
            entry.answer = a;
        }
        entry.questions.push(q);
    }
    Ok(order.into_iter().filter_map(|k| pairs.remove(&k)).collect())
}

/// RFC 4180 CSV: quoted fields, doubled quotes, newlines inside quotes.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.trim_start_matches('\u{feff}').chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// `GET /api/v1/sites/{id}/bot/unanswered`
pub async fn unanswered(
    State(state): State<AppState>,
    AuthAgent(agent): AuthAgent,
    Path(site_id): Path<String>,
) -> Result<Response, ApiError> {
    let site = site_for(&state, &agent, &site_id, false).await?;
    let items = state.hub.storage().unanswered_list(&site.id, 200).await?;
    Ok(Json(json!({ "items": items })).into_response())
}

/// `DELETE /api/v1/sites/{id}/bot/unanswered/{item}`
pub async fn unanswered_delete(
    State(state): State<AppState>,
    AuthAgent(agent): AuthAgent,
    Path((site_id, item)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let site = site_for(&state, &agent, &site_id, true).await?;
    if !state
        .hub
        .storage()
        .unanswered_delete(&site.id, &item)
        .await?
    {
        return Err(ApiError::not_found("no such unanswered question"));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_with_one_answer_become_one_pair() {
        let csv = "question,answer\n\"Where is my order, please?\",Check Orders in your account.\nTrack my parcel,Check Orders in your account.\n退货怎么办,\"7天内可退，\"\"无理由\"\"。\"\n";
        let pairs = import_csv(csv).unwrap();
        assert_eq!(pairs.len(), 2);
        assert_eq!(
            pairs[0].questions,
            vec!["Where is my order, please?", "Track my parcel"]
        );
        assert_eq!(pairs[0].lang, "en");
        assert_eq!(pairs[1].lang, "zh-CN");
        assert_eq!(pairs[1].answer, "7天内可退，\"无理由\"。");
        assert!(import_csv("q,a\nx,y\n").is_err());
    }
}
