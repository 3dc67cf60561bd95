//! The bot's admin API: per-site configuration, the site's own QA pairs, import, "try it",
//! and the questions the bot could not answer. Reading needs membership of the site;
//! changing needs an admin.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::AuthAgent;
use super::error::{ApiError, ApiJson};
use crate::AppState;
use crate::assistant::{BotConfig, SITE_PACK};
use crate::bot::entities::KINDS;
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
        "declined": intent.declined,
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
    /// The entity kinds it lists (the bot also counts those its answer has placeholders for).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    entities: Vec<String>,
    source: String,
}

impl From<SiteQa> for QaOut {
    /// One of the site's own pairs.
    fn from(p: SiteQa) -> Self {
        QaOut {
            id: p.id,
            lang: p.lang,
            questions: p.questions,
            answer: p.answer,
            quick_replies: p.quick_replies,
            handoff: p.handoff,
            decline: p.decline,
            entities: p.entities,
            source: SITE_PACK.into(),
        }
    }
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
        .map(QaOut::from)
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
                        entities: p.entities.clone(),
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

/// Bounds of one of a site's QA pairs (the built-in packs have about 38 questions a pair).
const MAX_QUESTIONS: usize = 200;
const MAX_QUESTION_CHARS: usize = 500;
const MAX_QUICK_REPLY_CHARS: usize = 60;
/// Quick replies are buttons under the answer: the widget shows three.
const MAX_QUICK_REPLIES: usize = 3;

/// The first of `items` longer than `max` characters.
fn first_longer(items: &[String], max: usize) -> Option<&String> {
    items.iter().find(|s| s.chars().count() > max)
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
    // A decline example answers nothing: its answer may be empty (one it has is kept).
    if !(qa.decline && qa.answer.is_empty()) {
        check_length("answer", &qa.answer)?;
    }
    if qa.decline && qa.handoff {
        return Err(ApiError::bad_request(
            "a decline example answers nothing, so it cannot also hand over after answering: set decline or handoff, not both",
        ));
    }
    let mut entities: Vec<String> = Vec::new();
    for e in &qa.entities {
        let e = e.trim();
        if !KINDS.contains(&e) {
            return Err(ApiError::bad_request(format!(
                "unknown entity kind {e:?}: the kinds are {}",
                KINDS.join(", ")
            )));
        }
        if !entities.iter().any(|k| k == e) {
            entities.push(e.to_owned());
        }
    }
    qa.entities = entities;
    if qa.questions.len() > MAX_QUESTIONS {
        return Err(ApiError::bad_request(format!(
            "a QA pair may have at most {MAX_QUESTIONS} questions, got {}",
            qa.questions.len()
        )));
    }
    if let Some(q) = first_longer(&qa.questions, MAX_QUESTION_CHARS) {
        return Err(ApiError::bad_request(format!(
            "a question may have at most {MAX_QUESTION_CHARS} characters: {:?}…",
            q.chars().take(40).collect::<String>()
        )));
    }
    qa.quick_replies = qa
        .quick_replies
        .iter()
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
        .collect();
    if let Some(r) = first_longer(&qa.quick_replies, MAX_QUICK_REPLY_CHARS) {
        return Err(ApiError::bad_request(format!(
            "a quick reply is a button: at most {MAX_QUICK_REPLY_CHARS} characters, got {:?}",
            r
        )));
    }
    if qa.quick_replies.len() > MAX_QUICK_REPLIES {
        return Err(ApiError::bad_request(format!(
            "a pair offers at most {MAX_QUICK_REPLIES} quick replies, got {}",
            qa.quick_replies.len()
        )));
    }
    if !lang_ok(&qa.lang) {
        return Err(ApiError::bad_request(format!(
            "lang must be en or zh-CN, got {:?}",
            qa.lang
        )));
    }
    Ok(())
}

fn qa_out(qa: SiteQa) -> serde_json::Value {
    json!({ "qa": QaOut::from(qa) })
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

/// `POST /api/v1/sites/{id}/qa/import`: CSV (`question,answer` with a header, optionally `id`
/// and `lang`) or a pack language file in the corpus JSON format. Every pair is checked before
/// any is stored, and all are stored in one transaction: a file with a mistake stores nothing.
///
/// The raw body is read by [`read_import`] rather than buffered by `Bytes` (which holds it to the
/// API's `limits.max_body_bytes`): imports have their own limit, `limits.import_max_bytes`.
pub async fn qa_import(
    State(state): State<AppState>,
    AuthAgent(agent): AuthAgent,
    Path(site_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let site = site_for(&state, &agent, &site_id, true).await?;
    let body = read_import(&headers, body, state.settings.limits.import_max_bytes).await?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the file is not UTF-8 text"))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
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
    let imported = pairs.len();
    state.hub.storage().qa_save_all(&site.id, pairs).await?;
    state.hub.assistant().invalidate(&site.id);
    Ok(Json(json!({ "imported": imported })).into_response())
}

/// Bytes an import that is too large is still read (and dropped) for, so that the client, which
/// is usually still sending, receives the answer rather than a reset connection.
const IMPORT_DRAIN_BYTES: u64 = 64 * 1024 * 1024;

/// Reads an import's body, at most `limit` bytes; a larger one is a `413` that says the limit.
async fn read_import(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    use futures_util::StreamExt as _;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "the file is too large: imports are limited to {} (setting limits.import_max_bytes)",
                byte_size(limit)
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared
        && n > limit as u64
    {
        let waiting = headers
            .get(header::EXPECT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
        // A client waiting for `100 Continue` has not sent the body: answer at once.
        if waiting || n > limit as u64 + IMPORT_DRAIN_BYTES {
            return Err(too_large());
        }
    }
    let mut stream = body.into_data_stream();
    let mut buf = bytes::BytesMut::with_capacity(declared.unwrap_or(0).min(limit as u64) as usize);
    let mut read: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("reading the file: {e}")))?;
        read += chunk.len() as u64;
        if read > limit as u64 {
            // Read the rest (up to a bound), so that the answer is not lost to a reset.
            let drain = async {
                while read <= limit as u64 + IMPORT_DRAIN_BYTES {
                    match stream.next().await {
                        Some(Ok(c)) => read += c.len() as u64,
                        _ => break,
                    }
                }
            };
            let _ = tokio::time::timeout(std::time::Duration::from_secs(30), drain).await;
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// `8 MiB`, `256 KiB`, `1000 bytes`.
fn byte_size(n: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;
    match n {
        n if n >= MIB && n % MIB == 0 => format!("{} MiB", n / MIB),
        n if n >= MIB => format!("{:.1} MiB", n as f64 / MIB as f64),
        n if n >= KIB && n % KIB == 0 => format!("{} KiB", n / KIB),
        n => format!("{n} bytes"),
    }
}

/// The problems found in a file, each naming its row; a `400` that lists the first few.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    const SHOWN: usize = 5;

    fn add(&mut self, problem: String) {
        self.0.push(problem);
    }

    fn into_result(self) -> Result<(), ApiError> {
        match self.0.len() {
            0 => Ok(()),
            1 => Err(ApiError::bad_request(format!(
                "nothing was imported: {}",
                self.0[0]
            ))),
            n => {
                let mut message = format!(
                    "nothing was imported: {n} problems: {}",
                    self.0[..n.min(Self::SHOWN)].join("; ")
                );
                if n > Self::SHOWN {
                    message.push_str(&format!("; and {} more", n - Self::SHOWN));
                }
                Err(ApiError::bad_request(message))
            }
        }
    }
}

fn lang_ok(lang: &str) -> bool {
    lang == "en" || lang == "zh-CN"
}

/// A pack language file (`corpus/README.md`): its pairs as they are, decline examples and
/// entities included.
fn import_json(text: &str) -> Result<Vec<SiteQa>, ApiError> {
    let file: crate::bot::corpus::PackLang = serde_json::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("not a pack language file: {e}")))?;
    if !lang_ok(&file.lang) {
        return Err(ApiError::bad_request(format!(
            "nothing was imported: the file's lang must be en or zh-CN, got {:?}",
            file.lang
        )));
    }
    let mut problems = Problems::default();
    let mut pairs = Vec::new();
    let mut seen: std::collections::HashMap<&str, usize> = Default::default();
    for (i, p) in file.qa.iter().enumerate() {
        let at = format!("qa[{i}] (id {:?})", p.id);
        if !p.id.is_empty()
            && let Some(first) = seen.insert(&p.id, i)
        {
            problems.add(format!("{at}: the id is also that of qa[{first}]"));
            continue;
        }
        let mut qa = SiteQa {
            id: String::new(),
            lang: file.lang.clone(),
            questions: p.questions.clone(),
            answer: p.answer.clone(),
            quick_replies: p.quick_replies.clone(),
            handoff: p.handoff,
            decline: p.decline,
            entities: p.entities.clone(),
        };
        match check_qa(&mut qa) {
            Ok(()) => pairs.push(qa),
            Err(e) => problems.add(format!("{at}: {}", e.message)),
        }
    }
    problems.into_result()?;
    Ok(pairs)
}

/// A pair being put together from the CSV rows of one id (or, without ids, of one answer).
struct CsvPair {
    qa: SiteQa,
    /// The line of its first row.
    line: usize,
    /// The line that gave its answer.
    answer_line: usize,
    /// The `lang` a row named, and that row's line.
    lang: Option<(String, usize)>,
    /// The id the rows named (empty without one).
    id: String,
}

/// Rows with the same id (or, without ids, the same answer and `lang`) become one pair: each row
/// adds a question. A row of an id may leave the answer or `lang` empty (they are the pair's);
/// one that names another answer or language is an error naming both lines. Without `lang`, the
/// language is Chinese when the first question or the answer has Chinese characters.
pub fn import_csv(text: &str) -> Result<Vec<SiteQa>, ApiError> {
    let mut rows = parse_csv(text)?.into_iter();
    let header: Vec<String> = rows
        .next()
        .ok_or_else(|| ApiError::bad_request("the CSV file is empty"))?
        .fields
        .into_iter()
        .map(|h| h.trim().to_lowercase())
        .collect();
    let col = |name: &str| header.iter().position(|h| h == name);
    let (Some(qi), Some(ai)) = (col("question"), col("answer")) else {
        return Err(ApiError::bad_request(
            "the CSV header (line 1) must name the columns question and answer (and optionally id, lang)",
        ));
    };
    let (idi, li) = (col("id"), col("lang"));
    let mut problems = Problems::default();
    let mut order: Vec<String> = Vec::new();
    let mut pairs: std::collections::HashMap<String, CsvPair> = Default::default();
    for row in rows {
        let line = row.line;
        if row.fields.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        if row.fields.len() > header.len() {
            problems.add(format!(
                "line {line}: {} fields, but the header has {} columns (put a field that holds a comma in double quotes)",
                row.fields.len(),
                header.len()
            ));
            continue;
        }
        let get = |i: Option<usize>| {
            i.and_then(|i| row.fields.get(i))
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        };
        let (q, a, id, lang) = (get(Some(qi)), get(Some(ai)), get(idi), get(li));
        if q.is_empty() {
            problems.add(format!("line {line}: the question is empty"));
            continue;
        }
        if !lang.is_empty() && !lang_ok(&lang) {
            problems.add(format!(
                "line {line}: lang must be en or zh-CN, got {lang:?}"
            ));
            continue;
        }
        if !a.is_empty()
            && let Err(e) = check_length("answer", &a)
        {
            problems.add(format!("line {line}: {}", e.message));
            continue;
        }
        let key = if !id.is_empty() {
            format!("id\u{0}{id}")
        } else if !a.is_empty() {
            format!("answer\u{0}{lang}\u{0}{a}")
        } else {
            problems.add(format!(
                "line {line}: the answer is empty (only a row with the id of another row may leave it empty)"
            ));
            continue;
        };
        let Some(pair) = pairs.get_mut(&key) else {
            order.push(key.clone());
            pairs.insert(
                key,
                CsvPair {
                    qa: SiteQa {
                        id: String::new(),
                        lang: String::new(),
                        questions: vec![q],
                        answer: a,
                        quick_replies: Vec::new(),
                        handoff: false,
                        decline: false,
                        entities: Vec::new(),
                    },
                    line,
                    answer_line: line,
                    lang: (!lang.is_empty()).then_some((lang, line)),
                    id,
                },
            );
            continue;
        };
        let what = format!("id {:?}", pair.id);
        if !a.is_empty() {
            if pair.qa.answer.is_empty() {
                pair.qa.answer = a;
                pair.answer_line = line;
            } else if pair.qa.answer != a {
                problems.add(format!(
                    "line {line}: {what} has another answer than on line {}",
                    pair.answer_line
                ));
                continue;
            }
        }
        if !lang.is_empty() {
            match &pair.lang {
                Some((l, at)) if *l != lang => {
                    problems.add(format!(
                        "line {line}: {what} is in lang {lang} here but {l} on line {at}"
                    ));
                    continue;
                }
                Some(_) => {}
                None => pair.lang = Some((lang, line)),
            }
        }
        if !pair.qa.questions.contains(&q) {
            pair.qa.questions.push(q);
        }
    }
    let mut out = Vec::with_capacity(order.len());
    for key in order {
        let Some(CsvPair {
            mut qa,
            line,
            lang,
            id,
            ..
        }) = pairs.remove(&key)
        else {
            continue;
        };
        if qa.answer.is_empty() {
            problems.add(format!(
                "line {line}: id {id:?} has no answer on any of its rows"
            ));
            continue;
        }
        qa.lang = match lang {
            Some((l, _)) => l,
            None => match crate::bot::text::detect(&qa.questions[0]) {
                "en" => crate::bot::text::detect(&qa.answer).to_owned(),
                zh => zh.to_owned(),
            },
        };
        match check_qa(&mut qa) {
            Ok(()) => out.push(qa),
            Err(e) => problems.add(format!("line {line}: {}", e.message)),
        }
    }
    problems.into_result()?;
    Ok(out)
}

/// A CSV record and the line of the file it starts on.
struct CsvRow {
    line: usize,
    fields: Vec<String>,
}

/// RFC 4180 CSV (a leading BOM is skipped): fields separated by commas, records by CRLF or LF; a
/// field that starts with a double quote is quoted and may hold commas, line breaks and doubled
/// quotes (`""`). Spaces around a quoted field are allowed. A quote anywhere else, or one never
/// closed, is an error that names its line.
fn parse_csv(text: &str) -> Result<Vec<CsvRow>, ApiError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let b = text.as_bytes();
    let blank = |c: u8| c == b' ' || c == b'\t';
    let mut rows = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < b.len() {
        let mut row = CsvRow {
            line,
            fields: Vec::new(),
        };
        loop {
            // One field, starting at `i`.
            let mut j = i;
            while j < b.len() && blank(b[j]) {
                j += 1;
            }
            let field = if j < b.len() && b[j] == b'"' {
                let open = line;
                let mut field = String::new();
                let mut k = j + 1;
                loop {
                    let Some(rel) = text[k..].find(['"', '\r', '\n']) else {
                        return Err(ApiError::bad_request(format!(
                            "nothing was imported: line {open}: a quoted field is not closed (its \" has no closing \")"
                        )));
                    };
                    field.push_str(&text[k..k + rel]);
                    k += rel;
                    match b[k] {
                        b'"' if b.get(k + 1) == Some(&b'"') => {
                            field.push('"');
                            k += 2;
                        }
                        b'"' => {
                            k += 1;
                            break;
                        }
                        b'\r' if b.get(k + 1) == Some(&b'\n') => {
                            field.push('\n');
                            line += 1;
                            k += 2;
                        }
                        b'\r' => {
                            field.push('\r');
                            k += 1;
                        }
                        _ => {
                            field.push('\n');
                            line += 1;
                            k += 1;
                        }
                    }
                }
                while k < b.len() && blank(b[k]) {
                    k += 1;
                }
                if k < b.len() && !matches!(b[k], b',' | b'\n') && !text[k..].starts_with("\r\n") {
                    return Err(ApiError::bad_request(format!(
                        "nothing was imported: line {line}: text after the closing quote of a quoted field (write a quote inside one as \"\")"
                    )));
                }
                i = k;
                field
            } else {
                let end = text[i..]
                    .find(['"', ',', '\n'])
                    .map_or(b.len(), |rel| i + rel);
                if b.get(end) == Some(&b'"') {
                    return Err(ApiError::bad_request(format!(
                        "nothing was imported: line {line}: a double quote inside a field that does not start with one (put the field in double quotes and write the quote as \"\")"
                    )));
                }
                let field = text[i..end]
                    .strip_suffix('\r')
                    .filter(|_| b.get(end) == Some(&b'\n'));
                let field = field.unwrap_or(&text[i..end]).to_owned();
                i = end;
                field
            };
            row.fields.push(field);
            match b.get(i) {
                Some(b',') => i += 1,
                Some(b'\r') => {
                    // CRLF (checked above).
                    i += 2;
                    line += 1;
                    break;
                }
                Some(_) => {
                    i += 1;
                    line += 1;
                    break;
                }
                None => break,
            }
        }
        rows.push(row);
    }
    Ok(rows)
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
