//! Public tracking endpoints (no token): web events (single or batch), pings. Each request must name a
//! registered deployment and come from one of its allowed origins; CORS preflights are answered per
//! deployment. Everything is validated at the edge, enriched, then stored through group commit before the
//! answer; the live hub hears about it after the commit.

use crate::error::{ApiError, ApiResult};
use crate::publish::{publish_owned_results, publish_results};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use waymark_domain::deployment::Deployment;
use waymark_domain::identity::TraitIdentity;
use waymark_domain::ids::{DeploymentId, OrgId};
use waymark_domain::url_cache::UrlCache;
use waymark_domain::web_event::{CookieId, UrlMemo, WebEventRequest, parse_web_event_in};
use waymark_domain::wire::{Attributes, Browser, Campaign, Device, EntityRef, Geolocation, Page, Referrer};
use waymark_domain::{ErrorCode, Rejection, Timestamp};
use waymark_enrich::RequestEnrichments;
use waymark_store::{IngestBatch, IngestItem, ItemResult, WebItem};

/// The deployment a request names, checked for existence, origin and rate.
pub(crate) struct TrackingContext {
    pub deployment: Arc<Deployment>,
    /// The deployment's parsed page URLs and referrers, shared by its requests.
    pub urls: Arc<UrlCache>,
    pub origin: Option<String>,
    pub client_ip: IpAddr,
    pub user_agent: Option<String>,
}

pub(crate) async fn tracking_context(
    state: &AppState,
    raw_id: &str,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> ApiResult<TrackingContext> {
    let id = DeploymentId::parse(raw_id).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownDeployment,
            "unknown deployment id; copy the id from your Waymark deployment settings",
        )
    })?;
    let xff = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let client_ip = waymark_enrich::client_ip(peer.ip(), xff, &state.trusted_proxies);
    state.limiters.tracking(client_ip, id)?;
    let (deployment, urls) = state.tracked_deployment(id).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownDeployment,
            "unknown deployment id; copy the id from your Waymark deployment settings",
        )
    })?;
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_string);
    if let Some(o) = &origin
        && !deployment.allows_origin(o)
    {
        return Err(ApiError::new(
            ErrorCode::OriginNotAllowed,
            format!(
                "origin {o} is not an allowed domain of this deployment; add it to the deployment's allowed domains"
            ),
        ));
    }
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_string);
    Ok(TrackingContext { deployment, urls, origin, client_ip, user_agent })
}

/// CORS headers for an allowed origin.
pub(crate) fn cors(resp: &mut Response, origin: Option<&str>) {
    if let Some(o) = origin
        && let Ok(v) = HeaderValue::from_str(o)
    {
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("false"));
    }
}

/// `OPTIONS` on any tracking path: allowed origins get CORS approval.
pub async fn preflight(
    State(state): State<AppState>,
    Path(params): Path<Vec<(String, String)>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let id = params.iter().find(|(k, _)| k == "deployment_id").map(|(_, v)| v.as_str()).unwrap_or("");
    match tracking_context(&state, id, &headers, peer).await {
        Ok(ctx) => {
            let mut resp = StatusCode::NO_CONTENT.into_response();
            cors(&mut resp, ctx.origin.as_deref());
            let h = resp.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, OPTIONS"));
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("content-type"));
            h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
            resp
        }
        Err(e) => e.into_response(),
    }
}

/// Whether a body-read failure is the body deadline expiring.
fn timed_out(r: &BytesRejection) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(r);
    while let Some(e) = cur {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// Map a body-read failure (too large, too slow, cut off) to a JSON error.
pub(crate) fn body_rejection(r: BytesRejection, limit: usize) -> ApiError {
    if timed_out(&r) {
        ApiError::new(ErrorCode::Timeout, "the request body did not arrive in time; send it in one go")
    } else if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            ErrorCode::BodyTooLarge,
            format!("the body is larger than {limit} bytes; send fewer events per request"),
        )
    } else {
        ApiError::new(ErrorCode::MalformedJson, format!("the body could not be read: {r}"))
    }
}

/// Parse a request body as JSON, with precise codes for the ways it can be wrong.
pub(crate) fn parse_json_body(headers: &HeaderMap, body: &Bytes) -> ApiResult<Value> {
    json_body(headers, body, serde_json::from_str)
}

/// A body of a JSON media type (or `text/plain`, which `sendBeacon` posts) parsed by `parse` from its text;
/// a body that is not UTF-8 or that `parse` refuses is a clear 4xx.
fn json_body<'b, T>(
    headers: &HeaderMap,
    body: &'b Bytes,
    parse: impl FnOnce(&'b str) -> serde_json::Result<T>,
) -> ApiResult<T> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        let ct = ct.to_ascii_lowercase();
        // sendBeacon posts text/plain; everything else must say JSON.
        if !(ct.starts_with("application/json") || ct.starts_with("text/plain") || ct.contains("+json")) {
            return Err(ApiError::new(ErrorCode::UnsupportedMediaType, "send the body as application/json"));
        }
    }
    let text = std::str::from_utf8(body).map_err(|e| {
        ApiError::new(ErrorCode::InvalidUtf8, format!("the body is not valid UTF-8 (at byte {})", e.valid_up_to()))
    })?;
    parse(text).map_err(|e| ApiError::new(ErrorCode::MalformedJson, format!("the body is not valid JSON: {e}")))
}

/// A web events body split into its events, each still unparsed text: one event object, an array of them, or
/// `{"events": [...]}`. Splitting only scans the text (no `Value` tree); each event is then parsed straight
/// into `WebEventRequest`.
enum RawEvents<'b> {
    Single(&'b RawValue),
    Batch(Vec<&'b RawValue>),
}

impl<'b> RawEvents<'b> {
    fn parse(text: &'b str) -> serde_json::Result<Option<Self>> {
        /// The `events` member of an object body, every other member skipped.
        #[derive(Deserialize)]
        struct Envelope<'a> {
            #[serde(borrow)]
            events: Option<&'a RawValue>,
        }
        match text.trim_start().as_bytes().first() {
            Some(b'[') => Ok(Some(RawEvents::Batch(serde_json::from_str(text)?))),
            Some(b'{') => {
                let envelope: Envelope<'b> = serde_json::from_str(text)?;
                match envelope.events {
                    Some(events) if events.get().starts_with('[') => {
                        Ok(Some(RawEvents::Batch(serde_json::from_str(events.get())?)))
                    }
                    _ => Ok(Some(RawEvents::Single(serde_json::from_str(text)?))),
                }
            }
            // Valid JSON that is neither an object nor an array is refused as such; invalid JSON as invalid.
            _ => serde_json::from_str::<serde::de::IgnoredAny>(text).map(|_| None),
        }
    }
}

/// `POST /api/v2/journey/deployments/{deploymentId}/webevents`: one `WebEventRequest`, or an array of up to
/// 100 (`{ "events": [...] }` is accepted too). A single event answers `WebEventResponse`; a batch answers
/// one result per event so that a bad event never loses the good ones.
#[utoipa::path(post, path = "/api/v2/journey/deployments/{deployment_id}/webevents", tag = "tracking",
    description = "Public (no token): one Genesys `WebEventRequest`, or an array of up to 100. The request must come \
        from an allowed domain of the deployment. A single event answers `WebEventResponse`; a batch answers one \
        result per event.",
    params(("deployment_id" = String, Path, description = "Deployment id")),
    request_body(content = serde_json::Value, description = "`WebEventRequest` or an array of them"),
    responses((status = 200, description = "`WebEventResponse` or per-event results", body = serde_json::Value),
        (status = 400, description = "Invalid event"), (status = 403, description = "Origin not allowed"),
        (status = 404, description = "Unknown deployment"), (status = 413, description = "Body too large"),
        (status = 429, description = "Rate limited")))]
pub async fn post_webevents(
    State(state): State<AppState>,
    Path(deployment_id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let ctx = match tracking_context(&state, &deployment_id, &headers, peer).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let origin = ctx.origin.clone();
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            let mut resp = body_rejection(rejection, state.config.limits.max_body_bytes).into_response();
            cors(&mut resp, origin.as_deref());
            return resp;
        }
    };
    let mut resp = match ingest_webevents(&state, &ctx, &headers, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    cors(&mut resp, origin.as_deref());
    resp
}

async fn ingest_webevents(
    state: &AppState,
    ctx: &TrackingContext,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<Response> {
    let (single, raw_events) = match json_body(headers, body, RawEvents::parse)? {
        Some(RawEvents::Single(event)) => (true, vec![event]),
        Some(RawEvents::Batch(events)) => (false, events),
        None => return Err(ApiError::new(ErrorCode::MalformedJson, "send a web event object or an array of them")),
    };
    let limits = &state.config.limits;
    if raw_events.is_empty() {
        return Err(ApiError::new(ErrorCode::EmptyBatch, "the batch holds no events"));
    }
    if raw_events.len() > limits.max_events_per_batch {
        return Err(ApiError::new(
            ErrorCode::TooManyEvents,
            format!(
                "a batch holds at most {} events; this one has {}; split it",
                limits.max_events_per_batch,
                raw_events.len()
            ),
        ));
    }
    let now = state.clock.now();
    let deployment = &ctx.deployment;
    let region = state.config.default_phone_region.as_deref();
    // Validate and enrich every event; keep the position of each so results line up with the request.
    let mut outcomes: Vec<Option<Rejection>> = Vec::with_capacity(raw_events.len());
    let mut items = Vec::with_capacity(raw_events.len());
    let mut enrichments = RequestEnrichments::default();
    let mut url_memo = UrlMemo::with_cache(&ctx.urls);
    for raw in raw_events {
        let parsed = serde_json::from_str::<WebEventRequest>(raw.get())
            .map_err(|e| match e.classify() {
                // Splitting the body only scanned each event: JSON it cannot hold (a number out of range, nesting
                // beyond the parser's depth) shows up here.
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                    Rejection::new(ErrorCode::MalformedJson, format!("the event is not valid JSON: {e}"))
                }
                _ => Rejection::new(
                    ErrorCode::InvalidField,
                    format!("the event does not have the WebEventRequest shape: {e}"),
                ),
            })
            .and_then(|req| {
                parse_web_event_in(
                    req,
                    deployment,
                    limits,
                    now,
                    Some(ctx.client_ip),
                    ctx.user_agent.as_deref(),
                    &mut url_memo,
                )
            })
            .and_then(|ev| {
                // Without an Origin header (server-to-server, some beacons) the page itself must be on an allowed domain.
                if ctx.origin.is_none() && !deployment.allows_host(&ev.page.hostname) {
                    return Err(Rejection::at(
                        ErrorCode::OriginNotAllowed,
                        "page.url",
                        format!("{} is not an allowed domain of this deployment", ev.page.hostname),
                    ));
                }
                Ok(ev)
            });
        match parsed {
            Ok(ev) => {
                let enrichment = enrichments.enrich(&state.enricher, ev.user_agent.as_deref(), &ev.hints, ev.ip);
                let identity = TraitIdentity::from_traits(&ev.traits, region);
                items.push(IngestItem::Web(Box::new(WebItem::new(
                    ev,
                    enrichment,
                    identity,
                    state.store.web_fields_form(),
                ))));
                outcomes.push(None);
            }
            Err(r) => outcomes.push(Some(r)),
        }
    }
    let results = if items.is_empty() {
        Vec::new()
    } else {
        let config = state.journey_config(deployment.org_id).await?;
        let n = items.len();
        let results = state.store.ingest(IngestBatch { org: deployment.org_id, config, items }).await?;
        state.web_events_ingested.increment(n as u64);
        results
    };
    let org = deployment.org_id;
    let rejected = outcomes.iter().filter(|o| o.is_some()).count();
    state.web_events_rejected.increment(rejected as u64);
    // The answer is built from the results first; then the results move into the live messages.
    if single {
        let answer = match (outcomes.pop().flatten(), results.first()) {
            (Some(r), _) => Err(r.into()),
            (None, Some(ItemResult::Web(stored))) => Ok(web_event_response(stored)),
            (None, Some(ItemResult::Duplicate { session })) => {
                Ok(axum::Json(json!({"duplicate": true, "session": session.as_ref().map(|s| &s.session)}))
                    .into_response())
            }
            (None, Some(ItemResult::Rejected(r))) => Err(r.clone().into()),
            _ => Err(ApiError::new(ErrorCode::Internal, "the event produced no result")),
        };
        publish_owned_results(state, org, results).await;
        return answer;
    }
    let mut next = results.iter();
    let mut out = Vec::with_capacity(outcomes.len());
    let mut accepted = 0usize;
    // A session's referrer is the same for all its events (another referrer starts another session): it is
    // given with the session's first result in the batch only. Repeated for every event, it was 45 % of a
    // tracker batch's answer.
    let mut referred: Vec<&str> = Vec::new();
    for (index, o) in outcomes.into_iter().enumerate() {
        let entry = match o {
            Some(r) => BatchResult::refused(index, r),
            None => match next.next() {
                Some(ItemResult::Web(stored)) => {
                    accepted += 1;
                    BatchResult {
                        event_id: Some(&stored.event.id),
                        session: referrer_once(
                            &mut referred,
                            Some(SessionSummary::after(&stored.session.session, &stored.counts)),
                        ),
                        ..BatchResult::ok(index)
                    }
                }
                Some(ItemResult::Duplicate { session }) => {
                    accepted += 1;
                    BatchResult {
                        duplicate: true,
                        session: referrer_once(&mut referred, session.as_ref().map(|s| SessionSummary::of(&s.session))),
                        ..BatchResult::ok(index)
                    }
                }
                Some(ItemResult::Rejected(r)) => BatchResult::refused(index, r.clone()),
                _ => BatchResult { status: 500, ..BatchResult::ok(index) },
            },
        };
        out.push(entry);
    }
    let status = if accepted == 0 { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let rejected_total = out.len() - accepted;
    let mut body = Vec::with_capacity(64 + out.len() * 160);
    serde_json::to_writer(&mut body, &BatchAnswer { accepted, rejected: rejected_total, results: &out })
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("encode the answer: {e}")))?;
    drop(out);
    publish_owned_results(state, org, results).await;
    Ok((status, [(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `summary` with its referrer only if it is the first summary of its session in the answer (`referred`).
fn referrer_once<'r>(referred: &mut Vec<&'r str>, summary: Option<SessionSummary<'r>>) -> Option<SessionSummary<'r>> {
    summary.map(|mut s| {
        if referred.contains(&s.id) {
            s.referrer = None;
        } else {
            referred.push(s.id);
        }
        s
    })
}

/// The answer to a batch of web events.
#[derive(Serialize)]
struct BatchAnswer<'a> {
    accepted: usize,
    rejected: usize,
    results: &'a [BatchResult<'a>],
}

/// One event's result in a batch answer.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BatchResult<'a> {
    index: usize,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    duplicate: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<SessionSummary<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Value>,
}

impl BatchResult<'_> {
    fn ok(index: usize) -> Self {
        BatchResult { index, status: 200, event_id: None, duplicate: false, session: None, error: None }
    }

    fn refused(index: usize, r: Rejection) -> Self {
        BatchResult { status: r.code.http_status(), error: Some(ApiError::from(r).to_json()), ..Self::ok(index) }
    }
}

/// `WebEventResponseSession`: the session an accepted event joined.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionSummary<'a> {
    id: &'a str,
    duration_in_seconds: i64,
    event_count: i64,
    pageview_count: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    self_uri: Option<&'a str>,
    created_date: waymark_domain::Timestamp,
    /// In a batch answer, only with the first result of each session ([`referrer_once`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    referrer: Option<&'a waymark_domain::wire::Referrer>,
}

impl<'a> SessionSummary<'a> {
    fn of(s: &'a waymark_domain::session::Session) -> Self {
        Self::after(s, &waymark_store::SessionCounts::of(s))
    }

    /// `s` (a batch's snapshot of the session, after its last event) with the figures as of one event.
    fn after(s: &'a waymark_domain::session::Session, counts: &waymark_store::SessionCounts) -> Self {
        SessionSummary {
            id: &s.id,
            duration_in_seconds: counts.duration_in_seconds,
            event_count: counts.event_count,
            pageview_count: counts.pageview_count,
            self_uri: s.self_uri.as_deref(),
            created_date: counts.created_date,
            referrer: s.referrer.as_deref(),
        }
    }
}

/// `WebEventResponse`: the event as the visitor's session enriched it (browser, device, place, campaign and
/// referrer come from the session when the event has none of its own), written straight from the stored
/// values.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WebEventResponse<'a> {
    event_name: &'a str,
    page: &'a Page,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent_string: Option<&'a String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    browser: Option<&'a Browser>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<&'a Device>,
    #[serde(skip_serializing_if = "Option::is_none")]
    geolocation: Option<&'a Geolocation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip_address: Option<&'a String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip_organization: Option<&'a String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mkt_campaign: Option<&'a Campaign>,
    #[serde(skip_serializing_if = "Option::is_none")]
    referrer: Option<&'a Referrer>,
    attributes: &'a Attributes,
    traits: &'a Attributes,
    #[serde(skip_serializing_if = "Option::is_none")]
    search_query: Option<&'a String>,
    authenticated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer_id: Option<&'a String>,
    customer_id_type: &'static str,
    session: SessionSummary<'a>,
    created_date: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_contact: Option<EntityRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_id: Option<&'a String>,
}

/// `WebEventResponse` from a stored event and its session.
fn web_event_response(stored: &waymark_store::WebStored) -> Response {
    let s = &stored.session.session;
    let Some(w) = &stored.event.web_event else {
        return ApiError::new(ErrorCode::Internal, "a stored web event has no web event body").into_response();
    };
    json_presized(&WebEventResponse {
        event_name: &w.event_name,
        page: &w.page,
        user_agent_string: w.user_agent_string.as_ref().or(s.user_agent_string.as_ref()),
        browser: w.browser.as_deref().or(s.browser.as_deref()),
        device: w.device.as_deref().or(s.device.as_deref()),
        geolocation: w.geolocation.as_deref().or(s.geolocation.as_deref()),
        ip_address: w.ip_address.as_ref().or(s.ip_address.as_ref()),
        ip_organization: w.ip_organization.as_ref().or(s.ip_organization.as_ref()),
        mkt_campaign: w.mkt_campaign.as_deref().or(s.mkt_campaign.as_deref()),
        referrer: w.referrer.as_deref().or(s.referrer.as_deref()),
        attributes: &w.attributes,
        traits: &w.traits,
        search_query: w.search_query.as_ref(),
        authenticated: w.authenticated,
        customer_id: s.customer_id.as_ref(),
        customer_id_type: "cookie",
        session: SessionSummary::of(s),
        created_date: stored.event.created_date,
        external_contact: stored.contact_id.map(|c| EntityRef::new(c, "/api/v2/externalcontacts/contacts")),
        external_id: s.external_id.as_ref(),
    })
}

/// A JSON answer serialized into a buffer sized for a web event's answer (~1.5 KB): `axum::Json` starts from
/// 128 bytes and reallocated four times on the way.
fn json_presized<T: Serialize>(value: &T) -> Response {
    let mut body = Vec::with_capacity(2048);
    match serde_json::to_writer(&mut body, value) {
        Ok(()) => ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response(),
        Err(e) => ApiError::new(ErrorCode::Internal, format!("encode the answer: {e}")).into_response(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PingQuery {
    pub dl: Option<String>,
    pub dt: Option<String>,
    pub session_id: Option<String>,
    pub since_last_beacon_milliseconds: Option<i64>,
}

/// `GET /api/v2/journey/deployments/{deploymentId}/customers/{customerCookieId}/ping`: the visitor is still
/// on the page. Keeps the session active and answers `DeploymentPing`.
#[utoipa::path(get, path = "/api/v2/journey/deployments/{deployment_id}/customers/{cookie_id}/ping", tag = "tracking",
    description = "Public (no token): the visitor is still on the page. Answers Genesys `DeploymentPing`.",
    params(("deployment_id" = String, Path, description = "Deployment id"),
        ("cookie_id" = String, Path, description = "Customer cookie id")),
    responses((status = 200, description = "`DeploymentPing`", body = serde_json::Value),
        (status = 403, description = "Origin not allowed"), (status = 404, description = "Unknown deployment"),
        (status = 429, description = "Rate limited")))]
pub async fn ping(
    State(state): State<AppState>,
    Path((deployment_id, cookie)): Path<(String, String)>,
    Query(q): Query<PingQuery>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    method: Method,
) -> Response {
    let _ = method;
    let ctx = match tracking_context(&state, &deployment_id, &headers, peer).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let origin = ctx.origin.clone();
    let mut resp = match ping_inner(&state, &ctx, &cookie, &q).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_response(),
    };
    cors(&mut resp, origin.as_deref());
    resp
}

/// The live outcome quantiles of the visitor's newest session, for action maps with outcome quantile
/// triggers (one indexed read, only when such maps exist).
async fn ping_scores(
    state: &AppState,
    org: OrgId,
    cookie: &CookieId,
    now: Timestamp,
) -> ApiResult<Vec<waymark_domain::offer::OutcomeScoreFact>> {
    let config = state.journey_config(org).await?;
    if !config.action_maps.iter().any(|m| !m.trigger_with_outcome_quantile_conditions.is_empty()) {
        return Ok(Vec::new());
    }
    let page = waymark_store::SessionPage {
        since: now.minus_secs(config.session.inactivity_timeout_secs),
        before: None,
        limit: 1,
    };
    let newest = state.store.customer_sessions(org, cookie, &page).await?;
    Ok(newest.first().map(|s| state.predictions.quantile_facts(org, &s.session.id)).unwrap_or_default())
}

async fn ping_inner(state: &AppState, ctx: &TrackingContext, cookie: &str, q: &PingQuery) -> ApiResult<Value> {
    let cookie = CookieId::parse(cookie)?;
    if let Some(dl) = &q.dl
        && dl.len() > state.config.limits.max_url_bytes
    {
        return Err(ApiError::new(ErrorCode::InvalidQueryParameter, "dl is too long"));
    }
    let _ = (&q.dt, &q.session_id, q.since_last_beacon_milliseconds);
    let now = state.clock.now();
    let org = ctx.deployment.org_id;
    let config = state.journey_config(org).await?;
    let page_url = q.dl.clone().filter(|u| u.starts_with("http://") || u.starts_with("https://"));
    let scores = ping_scores(state, org, &cookie, now).await?;
    let item = IngestItem::Ping { cookie: cookie.clone(), at: now, page_url, scores };
    let results = state.store.ingest(IngestBatch { org, config, items: vec![item] }).await?;
    publish_results(state, org, &results).await;
    let mut actions = Vec::new();
    if let Some(ItemResult::Pinged { session: Some(s), offers, .. }) = results.first() {
        for o in offers {
            actions.push(crate::actions_api::web_action_json(o, cookie.as_str(), &s.session.id));
        }
    }
    Ok(json!({"actions": actions, "pollIntervalMilliseconds": state.config.ping_interval_ms}))
}

/// The public tracking endpoints (no token; deployment and origin checked).
/// (`OPTIONS` preflights are CORS plumbing and stay out of the API document.)
pub fn routes(body_limit: usize) -> utoipa_axum::router::OpenApiRouter<AppState> {
    use axum::routing::options;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(post_webevents))
        .route("/api/v2/journey/deployments/{deployment_id}/webevents", options(preflight))
        .routes(utoipa_axum::routes!(ping))
        .route("/api/v2/journey/deployments/{deployment_id}/customers/{cookie_id}/ping", options(preflight))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
}

#[cfg(test)]
mod tests {
    use super::RawEvents;

    fn split(text: &str) -> Option<(bool, Vec<String>)> {
        match RawEvents::parse(text).expect("valid JSON") {
            Some(RawEvents::Single(e)) => Some((true, vec![e.get().to_string()])),
            Some(RawEvents::Batch(es)) => Some((false, es.iter().map(|e| e.get().to_string()).collect())),
            None => None,
        }
    }

    #[test]
    fn a_body_splits_into_its_events_as_written() {
        assert_eq!(split(r#" [{"a":1}, {"b":[2]}] "#), Some((false, vec![r#"{"a":1}"#.into(), r#"{"b":[2]}"#.into()])));
        assert_eq!(split(r#"{"x":0,"events":[{"a":1}]}"#), Some((false, vec![r#"{"a":1}"#.into()])));
        assert_eq!(
            split(r#"{"eventName":"page_viewed"}"#),
            Some((true, vec![r#"{"eventName":"page_viewed"}"#.into()]))
        );
        // `events` that is not an array is a member of a single event, as before.
        assert_eq!(split(r#"{"events":"many"}"#), Some((true, vec![r#"{"events":"many"}"#.into()])));
        assert_eq!(split("[]"), Some((false, vec![])));
        assert_eq!(split(r#""page_viewed""#), None);
        assert_eq!(split("12"), None);
    }

    #[test]
    fn invalid_json_is_an_error_wherever_it_is() {
        for bad in ["", "[", r#"[{"a":1},]"#, r#"{"events":[1,}"#, r#"{"a":1}}"#, "[1] x", "nul"] {
            assert!(RawEvents::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }
}
