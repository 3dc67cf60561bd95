//! Agent authentication: the login session (cookie) or an API token (`Authorization: Bearer`).

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use kefu::api::{LoginRequest, MeResponse};
use tower_sessions::Session;

use super::error::{ApiError, ApiJson};
use crate::AppState;
use crate::storage::Agent;

const SESSION_AGENT: &str = "agent_id";

/// The authenticated agent of a request.
pub struct AuthAgent(pub Agent);

/// Whether `origin` (an `Origin` header) names this server: the host the request was sent to
/// (`Host`, or `X-Forwarded-Host` behind a proxy) or that of `server.public_url`.
pub fn is_own_origin(headers: &HeaderMap, public_url: Option<&str>, origin: &str) -> bool {
    let Some((_, origin_host)) = origin.split_once("://") else {
        return false;
    };
    let header = |name: &str| headers.get(name).and_then(|h| h.to_str().ok());
    let public_host = public_url
        .and_then(|u| u.split_once("://"))
        .map(|(_, rest)| rest.split('/').next().unwrap_or(rest));
    [header("host"), header("x-forwarded-host"), public_host]
        .into_iter()
        .flatten()
        .any(|host| host.trim().eq_ignore_ascii_case(origin_host))
}

/// A request that a page of another origin could make with the agent's cookie: anything but a
/// plain read (`GET`, `HEAD`), and every WebSocket upgrade. The cookie is `SameSite=Lax`,
/// which stops other sites but not other hosts of the same site (`shop.example.com` and
/// `chat.example.com`); browsers send `Origin` on these requests, so it must be ours.
fn cross_origin_write(parts: &Parts, state: &AppState) -> Option<String> {
    let upgrade = parts.headers.contains_key(axum::http::header::UPGRADE);
    if !upgrade && matches!(parts.method, Method::GET | Method::HEAD) {
        return None;
    }
    let origin = parts
        .headers
        .get(axum::http::header::ORIGIN)?
        .to_str()
        .ok()?;
    let public_url = state.settings.server.public_url.as_deref();
    (!is_own_origin(&parts.headers, public_url, origin)).then(|| origin.to_owned())
}

pub fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

impl FromRequestParts<AppState> for AuthAgent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let storage = state.hub.storage();
        if let Some(token) = bearer(parts) {
            return match storage
                .agent_by_token_hash(&crate::auth::token_hash(token))
                .await?
            {
                Some(agent) => Ok(AuthAgent(agent)),
                None => Err(ApiError::unauthorized("API token is not valid")),
            };
        }
        if let Some(origin) = cross_origin_write(parts, state) {
            return Err(ApiError::forbidden(format!(
                "a page of {origin} may not act with this server's login cookie; \
                 if that is this server's own address behind a proxy, set server.public_url"
            )));
        }
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::unauthorized("not logged in"))?;
        let agent_id: Option<String> = session
            .get(SESSION_AGENT)
            .await
            .map_err(|e| ApiError::unavailable(format!("session store: {e}")))?;
        let Some(agent_id) = agent_id else {
            return Err(ApiError::unauthorized("not logged in"));
        };
        match storage.agent(&agent_id).await? {
            Some(agent) => Ok(AuthAgent(agent)),
            None => Err(ApiError::unauthorized("this account no longer exists")),
        }
    }
}

/// `POST /api/v1/auth/login`
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    session: Session,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<MeResponse>, ApiError> {
    let email = req.email.trim().to_lowercase();
    // The client's address, not the socket's: behind a proxy every login comes from the proxy,
    // and one guesser would lock everyone out.
    let ip = super::widget::client_ip(&headers, addr);
    let keys = [format!("email:{email}"), format!("ip:{ip}")];
    for key in &keys {
        if let Some(wait) = state.logins.check(key) {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "too many failed logins; try again in {} minutes",
                    wait.as_secs().div_ceil(60)
                ),
            ));
        }
    }
    let agent = state.hub.storage().agent_by_email(&email).await?;
    let password = req.password;
    // Hash even when the email is unknown, so timing does not tell which emails exist.
    let hash = agent
        .as_ref()
        .map(|a| a.password_hash.clone())
        .unwrap_or_else(|| {
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$WmFrZVpha2VaYWtlWmFrZVpha2VaYWtlWmFrZQ"
                .to_owned()
        });
    let ok = tokio::task::spawn_blocking(move || crate::auth::verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    match agent {
        Some(agent) if ok => {
            for key in &keys {
                state.logins.succeed(key);
            }
            session
                .cycle_id()
                .await
                .map_err(|e| ApiError::unavailable(format!("session store: {e}")))?;
            session
                .insert(SESSION_AGENT, &agent.id)
                .await
                .map_err(|e| ApiError::unavailable(format!("session store: {e}")))?;
            tracing::info!(agent = %agent.id, "agent logged in");
            Ok(Json(MeResponse {
                agent: agent.info(),
            }))
        }
        _ => {
            for key in &keys {
                state.logins.fail(key);
            }
            Err(ApiError::unauthorized("wrong email or password"))
        }
    }
}

/// `POST /api/v1/auth/logout`
pub async fn logout(session: Session) -> Response {
    let _ = session.flush().await;
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /api/v1/me`
pub async fn me(AuthAgent(agent): AuthAgent) -> Json<MeResponse> {
    Json(MeResponse {
        agent: agent.info(),
    })
}
