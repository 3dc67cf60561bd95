//! Widget sessions: who the visitor is, resumed from their token or new.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::header::{ORIGIN, USER_AGENT};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use kefu::api::{ConversationRef, SessionRequest, SessionResponse, SiteBrief, VisitorRef};

use super::auth::is_own_origin;
use super::error::{ApiError, ApiJson};
use crate::AppState;
use crate::hub::VisitorCtx;
use crate::storage::VisitorUpsert;

/// The visitor of a request, from `Authorization: Bearer <visitor_token>`.
pub struct AuthVisitor(pub VisitorCtx);

impl FromRequestParts<AppState> for AuthVisitor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = super::auth::bearer(parts).ok_or_else(|| {
            ApiError::unauthorized("missing Authorization: Bearer <visitor_token>")
        })?;
        let claims = state
            .tokens
            .verify(token)
            .ok_or_else(|| ApiError::unauthorized("visitor token is invalid"))?;
        Ok(AuthVisitor(VisitorCtx {
            id: claims.visitor_id,
            site_id: claims.site_id,
        }))
    }
}

fn clip(s: Option<String>, max: usize) -> Option<String> {
    s.map(|s| s.trim().chars().take(max).collect::<String>())
        .filter(|s| !s.is_empty())
}

/// The client's address: the socket peer, or the first `X-Forwarded-For` hop when the peer is
/// a proxy on this machine or a private network.
pub fn client_ip(headers: &HeaderMap, peer: SocketAddr) -> String {
    let ip = peer.ip();
    let trusted = ip.is_loopback()
        || match ip {
            std::net::IpAddr::V4(v4) => v4.is_private(),
            std::net::IpAddr::V6(_) => false,
        };
    if trusted
        && let Some(fwd) = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok())
        && let Some(first) = fwd.split(',').next()
        && first.trim().parse::<std::net::IpAddr>().is_ok()
    {
        return first.trim().to_owned();
    }
    ip.to_string()
}

/// `POST /api/v1/widget/sessions`
pub async fn create_session(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<SessionRequest>,
) -> Result<Json<SessionResponse>, ApiError> {
    let storage = state.hub.storage();
    let site = storage
        .site_by_key(req.site_key.trim())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("unknown site_key {:?}", req.site_key)))?;

    // The widget frame is served by us and may only be framed by allowed origins
    // (frame-ancestors); direct callers are checked by their Origin here.
    if !site.allowed_origins.is_empty()
        && let Some(origin) = headers.get(ORIGIN).and_then(|o| o.to_str().ok())
        && !is_own_origin(
            &headers,
            state.settings.server.public_url.as_deref(),
            origin,
        )
        && !site
            .allowed_origins
            .iter()
            .any(|a| a.eq_ignore_ascii_case(origin))
    {
        return Err(ApiError::forbidden(format!(
            "origin {origin} is not allowed for this site"
        )));
    }

    let mut external_id = None;
    let (mut name, mut email) = (None, None);
    if let Some(user) = req.user.filter(|u| !u.id.is_empty()) {
        let hash = user.hash.as_deref().unwrap_or("");
        if !crate::auth::verify_identity(&site.secret, &user.id, hash) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "user.hash is not the HMAC-SHA256 of user.id with this site's secret",
            ));
        }
        external_id = Some(user.id);
        name = clip(user.name, 100);
        email = clip(user.email, 200);
    }

    let existing = req
        .visitor_token
        .as_deref()
        .and_then(|t| state.tokens.verify(t))
        .filter(|c| c.site_id == site.id)
        .map(|c| c.visitor_id);
    let ip = client_ip(&headers, peer);
    if existing.is_none() && !state.new_visitors.allow(&ip) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many new visitors from this address; try again in a minute \
             (a returning visitor sends its visitor_token)",
        ));
    }
    let visitor = storage
        .upsert_visitor(VisitorUpsert {
            id: existing,
            site_id: site.id.clone(),
            external_id,
            name,
            email,
            page_url: clip(req.page_url, 2000),
            referrer: clip(req.referrer, 2000),
            user_agent: clip(
                headers
                    .get(USER_AGENT)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                400,
            ),
            ip: Some(ip),
            locale: clip(req.locale, 35),
            timezone: clip(req.timezone, 64),
            utc_offset_minutes: req.utc_offset_minutes.filter(|m| m.abs() <= 14 * 60),
        })
        .await?;
    let conversation = storage
        .current_conversation(&visitor.info.id)
        .await?
        .map(|c| ConversationRef {
            id: c.id,
            last_seq: c.last_seq,
        });
    Ok(Json(SessionResponse {
        visitor_token: state.tokens.issue(&visitor.info.id, &site.id),
        visitor: VisitorRef {
            id: visitor.info.id,
        },
        conversation,
        site: Some(SiteBrief {
            name: site.name,
            agents_online: state.hub.online_agents(&site.id),
        }),
    }))
}

#[derive(serde::Deserialize)]
pub struct ContactBody {
    name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    note: Option<String>,
}

/// `POST /api/v1/widget/contact`: the visitor leaves contact details for a reply later.
pub async fn contact(
    State(state): State<AppState>,
    AuthVisitor(visitor): AuthVisitor,
    ApiJson(body): ApiJson<ContactBody>,
) -> Result<StatusCode, ApiError> {
    let email = clip(body.email, 200);
    let phone = clip(body.phone, 40);
    if email.is_none() && phone.is_none() {
        return Err(ApiError::bad_request(
            "leave an email address or a phone number",
        ));
    }
    if let Some(e) = &email
        && (!e.contains('@') || e.contains(char::is_whitespace))
    {
        return Err(ApiError::bad_request(format!(
            "{e:?} is not an email address"
        )));
    }
    if let Some(p) = &phone
        && p.chars().filter(char::is_ascii_digit).count() < 5
    {
        return Err(ApiError::bad_request(format!(
            "{p:?} is not a phone number"
        )));
    }
    state
        .hub
        .storage()
        .set_visitor_contact(
            &visitor.id,
            crate::storage::VisitorContact {
                name: clip(body.name, 100),
                email,
                phone,
                note: clip(body.note, 2000),
            },
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
