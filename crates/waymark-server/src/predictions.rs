//! Live outcome predictions on the server: the organisations' outcome models (persisted as
//! [`RecordKind::Model`] records, one per organisation and outcome, cached here), the live scores of web
//! sessions, and online training from finished sessions.
//!
//! **Scoring** runs after every committed web event ([`Predictions::after_web_event`], called from
//! [`crate::publish`]): the session's [`SessionFeatures`] are kept in memory per session and updated with the
//! event (and the events it derived, such as outcome achievements); every active outcome's model scores them,
//! and the scores go to the live hub as a `scores` message. Feature state is a cache, not a source of truth:
//! a session this node has not seen (restart, another node, eviction) is rebuilt once from its stored events,
//! at most [`MAX_REPLAY_EVENTS`] of them, so the cost stays bounded and results do not depend on which node
//! scored before.
//!
//! **Training** happens in the maintenance task ([`Predictions::train`]): sessions that ended (closed for
//! inactivity by `close_idle_sessions`, or by a new session on ingest, queued here) are replayed from their
//! stored events into training snapshots ([`SessionReplay`]); each outcome's model record is read, taught and
//! written back with an expected version. A conflict (another node wrote first) re-reads and re-teaches, so
//! each ended session is learned exactly once per outcome — every session is ended by exactly one
//! transaction, hence handed to exactly one node.

use crate::live::LiveChange;
use crate::state::AppState;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use waymark_domain::Timestamp;
use waymark_domain::event::Event;
use waymark_domain::ids::{OrgId, SessionId};
use waymark_domain::offer::OutcomeScoreFact;
use waymark_domain::predict::{MAX_REPLAY_EVENTS, OutcomeModel, SessionFeatures, SessionReplay};
use waymark_domain::session::SessionType;
use waymark_store::{EventPage, Record, RecordKind, SessionRecord, StoreError, StoreResult, WebStored};

/// How long an organisation's outcomes and models are cached before they are read again.
const MODELS_TTL: Duration = Duration::from_secs(5);
/// Sessions whose features are kept in memory; beyond this the least recently scored are dropped (and
/// rebuilt from the store if they come back).
const LIVE_SESSIONS: usize = 50_000;
/// Ended sessions waiting for the maintenance task; beyond this, new ones are not learned from.
const PENDING_LIMIT: usize = 100_000;
/// How many times a model update is retried after losing a version race.
const TRAIN_ATTEMPTS: usize = 5;
/// Drivers reported per score.
const TOP_FEATURES: usize = 5;

/// One active outcome and its model.
#[derive(Debug, Clone)]
pub struct ScoredOutcome {
    pub id: String,
    pub display_name: String,
    pub model: Arc<OutcomeModel>,
}

#[derive(Debug)]
struct OrgModels {
    loaded: Instant,
    outcomes: Arc<Vec<ScoredOutcome>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct LiveScore {
    probability: f64,
    session_max: f64,
}

#[derive(Debug, Clone)]
struct LiveSession {
    features: SessionFeatures,
    scores: HashMap<String, LiveScore>,
    modified: Timestamp,
    touched: u64,
}

impl LiveSession {
    fn new(now: Timestamp) -> Self {
        LiveSession { features: SessionFeatures::new(), scores: HashMap::new(), modified: now, touched: 0 }
    }

    /// Score every outcome on the current features and fold the result into the session maxima.
    fn score(&mut self, outcomes: &[ScoredOutcome], at: Timestamp) {
        for o in outcomes {
            let p = if self.features.has_achieved(&o.id) { 1.0 } else { o.model.score(&self.features) };
            let s = self.scores.entry(o.id.clone()).or_default();
            s.probability = p;
            s.session_max = s.session_max.max(p);
        }
        self.modified = self.modified.max(at);
    }
}

/// A driver of a score on the wire.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct WireDriver<'a> {
    feature: &'a str,
    weight: f64,
}

/// The server's prediction state. One per process, shared through [`AppState`].
#[derive(Default)]
pub struct Predictions {
    orgs: Mutex<HashMap<OrgId, OrgModels>>,
    live: Mutex<HashMap<String, LiveSession>>,
    touch: std::sync::atomic::AtomicU64,
    pending: Mutex<Vec<SessionRecord>>,
}

/// The id of the model record of an outcome.
pub fn model_record_id(outcome_id: &str) -> String {
    format!("model-{outcome_id}")
}

/// The active outcomes of an organisation, from the outcome definitions' stored Genesys JSON.
async fn active_outcomes(state: &AppState, org: OrgId) -> StoreResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    for r in state.store.list_records(RecordKind::Outcome, Some(org)).await? {
        if r.body.get("isActive").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let name = r.body.get("displayName").and_then(Value::as_str).unwrap_or(&r.name).to_string();
        out.push((r.id.clone(), name));
    }
    Ok(out)
}

/// The stored model of an outcome and its record version (a fresh model and `None` when there is none yet).
async fn stored_model(state: &AppState, outcome_id: &str) -> StoreResult<(OutcomeModel, Option<i64>)> {
    match state.store.get_record(RecordKind::Model, &model_record_id(outcome_id)).await? {
        Some(r) => match r.decode::<OutcomeModel>() {
            Ok(m) => Ok((m, Some(r.version))),
            Err(e) => {
                // A model that cannot be read (e.g. written by a future version) is relearned from scratch.
                tracing::warn!(error = %e, outcome = outcome_id, "unreadable outcome model; starting a new one");
                Ok((OutcomeModel::default(), Some(r.version)))
            }
        },
        None => Ok((OutcomeModel::default(), None)),
    }
}

impl Predictions {
    pub fn new() -> Self {
        Self::default()
    }

    /// The organisation's active outcomes with their models (cached for a few seconds).
    pub async fn outcomes(&self, state: &AppState, org: OrgId) -> StoreResult<Arc<Vec<ScoredOutcome>>> {
        if let Some(m) = self.orgs.lock().get(&org)
            && m.loaded.elapsed() < MODELS_TTL
        {
            return Ok(m.outcomes.clone());
        }
        let mut outcomes = Vec::new();
        for (id, display_name) in active_outcomes(state, org).await? {
            let (model, _) = stored_model(state, &id).await?;
            outcomes.push(ScoredOutcome { id, display_name, model: Arc::new(model) });
        }
        let outcomes = Arc::new(outcomes);
        self.orgs.lock().insert(org, OrgModels { loaded: Instant::now(), outcomes: outcomes.clone() });
        Ok(outcomes)
    }

    /// Forget an organisation's cached outcomes and models (after a definition or a model changed).
    pub fn forget(&self, org: OrgId) {
        self.orgs.lock().remove(&org);
    }

    fn next_touch(&self) -> u64 {
        self.touch.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Rebuild a session's live state from its stored events, scoring after each one for the session maxima.
    async fn rebuild(
        &self,
        state: &AppState,
        rec: &SessionRecord,
        outcomes: &[ScoredOutcome],
    ) -> StoreResult<LiveSession> {
        let events = session_events(state, rec).await?;
        let mut live = LiveSession::new(rec.session.created_date);
        for e in &events {
            live.features.observe(e, &rec.session);
            live.score(outcomes, e.created_date);
        }
        if events.is_empty() {
            live.score(outcomes, rec.session.created_date);
        }
        Ok(live)
    }

    fn keep(&self, id: String, mut live: LiveSession) {
        live.touched = self.next_touch();
        let mut map = self.live.lock();
        if map.len() >= LIVE_SESSIONS && !map.contains_key(&id) {
            // Drop the least recently scored tenth in one go (amortised).
            let mut touched: Vec<u64> = map.values().map(|l| l.touched).collect();
            let cut = LIVE_SESSIONS / 10;
            touched.select_nth_unstable(cut);
            let threshold = touched[cut];
            map.retain(|_, l| l.touched > threshold);
        }
        map.insert(id, live);
    }

    /// Score a web session after a committed event and push the scores to the live hub.
    pub async fn after_web_event(&self, state: &AppState, org: OrgId, stored: &WebStored) {
        if let Err(e) = self.score_event(state, org, stored).await {
            tracing::warn!(error = %e, session = %stored.session.session.id, "scoring a session failed");
        }
        if let Some(closed) = &stored.closed {
            self.session_ended(SessionRecord::clone(closed));
        }
    }

    async fn score_event(&self, state: &AppState, org: OrgId, stored: &WebStored) -> StoreResult<()> {
        let outcomes = self.outcomes(state, org).await?;
        if outcomes.is_empty() {
            return Ok(());
        }
        let rec = &stored.session;
        let id = rec.session.id.clone();
        let started = Instant::now();
        let updated = {
            let mut map = self.live.lock();
            match map.get_mut(&id) {
                Some(live) => {
                    observe_stored(&mut live.features, stored);
                    live.score(&outcomes, stored.event.created_date);
                    live.touched = self.next_touch();
                    Some(live.clone())
                }
                None => None,
            }
        };
        let live = match updated {
            Some(l) => l,
            None => {
                let live = if stored.new_session {
                    let mut l = LiveSession::new(stored.event.created_date);
                    observe_stored(&mut l.features, stored);
                    l.score(&outcomes, stored.event.created_date);
                    l
                } else {
                    // Not seen by this node yet: the stored events already hold this one.
                    self.rebuild(state, rec, &outcomes).await?
                };
                self.keep(id, live.clone());
                live
            }
        };
        metrics::histogram!("waymark_scoring_seconds").record(started.elapsed().as_secs_f64());
        let body = scores_json(&outcomes, &live);
        state.hub.publish(org, LiveChange::Scores { record: rec.clone(), scores: Arc::new(body) });
        Ok(())
    }

    /// The current `OutcomeScoresResult` of a session (rebuilt from its events when not in memory).
    pub async fn scores(&self, state: &AppState, rec: &SessionRecord) -> StoreResult<Value> {
        if rec.session.session_type != SessionType::Web {
            return Ok(json!({"outcomeScores": []}));
        }
        let outcomes = self.outcomes(state, rec.org).await?;
        if outcomes.is_empty() {
            return Ok(json!({"outcomeScores": []}));
        }
        let cached = self.live.lock().get(&rec.session.id).cloned();
        let live = match cached {
            Some(l) => l,
            None => {
                let l = self.rebuild(state, rec, &outcomes).await?;
                if rec.session.ended_date.is_none() {
                    self.keep(rec.session.id.clone(), l.clone());
                }
                l
            }
        };
        Ok(scores_json(&outcomes, &live))
    }

    /// The session's current quantiles per outcome, for the offer engine's outcome quantile triggers. Only
    /// sessions this node is scoring (in memory) have them; an empty list means "no score yet", which never
    /// satisfies a quantile condition. Models still learning give no facts: their scores are not meaningful.
    pub fn quantile_facts(&self, org: OrgId, session_id: &str) -> Vec<OutcomeScoreFact> {
        let outcomes = match self.orgs.lock().get(&org) {
            Some(m) => m.outcomes.clone(),
            None => return Vec::new(),
        };
        let live = self.live.lock();
        let Some(l) = live.get(session_id) else { return Vec::new() };
        outcomes
            .iter()
            .filter(|o| !o.model.learning())
            .filter_map(|o| {
                let s = l.scores.get(&o.id)?;
                Some(OutcomeScoreFact {
                    outcome_id: o.id.clone(),
                    quantile: o.model.quantiles.quantile(s.probability),
                    session_max_quantile: o.model.quantiles.quantile(s.session_max),
                })
            })
            .collect()
    }

    /// Queue an ended session for training.
    pub fn session_ended(&self, rec: SessionRecord) {
        if rec.session.session_type != SessionType::Web {
            return;
        }
        let mut p = self.pending.lock();
        if p.len() < PENDING_LIMIT {
            p.push(rec);
        } else {
            metrics::counter!("waymark_training_dropped_total").increment(1);
        }
    }

    /// Learn from the ended sessions (`closed` plus those queued since the last run). Run by maintenance.
    pub async fn train(&self, state: &AppState, closed: Vec<SessionRecord>) {
        let mut all = std::mem::take(&mut *self.pending.lock());
        all.extend(closed.into_iter().filter(|r| r.session.session_type == SessionType::Web));
        if all.is_empty() {
            return;
        }
        {
            let mut live = self.live.lock();
            for r in &all {
                live.remove(&r.session.id);
            }
        }
        let mut by_org: HashMap<OrgId, Vec<SessionRecord>> = HashMap::new();
        for r in all {
            by_org.entry(r.org).or_default().push(r);
        }
        for (org, sessions) in by_org {
            if let Err(e) = self.train_org(state, org, &sessions).await {
                tracing::warn!(error = %e, %org, sessions = sessions.len(), "training outcome models failed");
            }
        }
    }

    async fn train_org(&self, state: &AppState, org: OrgId, sessions: &[SessionRecord]) -> StoreResult<()> {
        let outcomes = active_outcomes(state, org).await?;
        if outcomes.is_empty() {
            return Ok(());
        }
        let mut replays = Vec::with_capacity(sessions.len());
        for rec in sessions {
            let events = session_events(state, rec).await?;
            if !events.is_empty() {
                replays.push(SessionReplay::new(&events, &rec.session));
            }
        }
        if replays.is_empty() {
            return Ok(());
        }
        for (outcome_id, name) in outcomes {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let (mut model, version) = stored_model(state, &outcome_id).await?;
                for r in &replays {
                    r.teach(&mut model, &outcome_id);
                }
                let body = serde_json::to_value(&model).map_err(|e| StoreError::Internal(e.to_string()))?;
                let mut record = Record::new(
                    RecordKind::Model,
                    Some(org),
                    model_record_id(&outcome_id),
                    name.clone(),
                    body,
                    state.clock.now(),
                );
                record.version = version.unwrap_or(0) + 1;
                match state.store.put_record(&record, version, false).await {
                    Ok(()) => break,
                    Err(StoreError::Conflict(_)) if attempt < TRAIN_ATTEMPTS => continue,
                    Err(e) => return Err(e),
                }
            }
            metrics::counter!("waymark_model_sessions_learned_total").increment(replays.len() as u64);
        }
        self.forget(org);
        Ok(())
    }
}

/// Observe a stored web event and the events it derived.
fn observe_stored(f: &mut SessionFeatures, stored: &WebStored) {
    f.observe(&stored.event, &stored.session.session);
    for d in &stored.derived {
        f.observe(d, &stored.session.session);
    }
}

/// A session's stored events in time order, at most [`MAX_REPLAY_EVENTS`].
async fn session_events(state: &AppState, rec: &SessionRecord) -> StoreResult<Vec<Event>> {
    let Some(sid) = SessionId::parse(&rec.session.id) else { return Ok(Vec::new()) };
    state
        .store
        .session_events(rec.org, sid, &EventPage { after: None, limit: MAX_REPLAY_EVENTS, types: Vec::new() })
        .await
}

/// `OutcomeScoresResult` with Waymark's extras (`learning`, `topFeatures`, `displayName`, per-score
/// `modifiedDate`).
fn scores_json(outcomes: &[ScoredOutcome], live: &LiveSession) -> Value {
    let modified = live.modified;
    let scores: Vec<Value> = outcomes
        .iter()
        .map(|o| {
            let s = live.scores.get(&o.id).copied().unwrap_or_default();
            let q = o.model.quantiles.quantile(s.probability);
            let qmax = o.model.quantiles.quantile(s.session_max);
            let drivers = o.model.explain(&live.features, TOP_FEATURES);
            let drivers: Vec<WireDriver> =
                drivers.iter().map(|d| WireDriver { feature: &d.feature, weight: round4(d.weight) }).collect();
            json!({
                "outcome": {
                    "id": o.id,
                    "selfUri": format!("/api/v2/journey/outcomes/{}", o.id),
                    "displayName": o.display_name,
                },
                "probability": round4(s.probability),
                "sessionMaxProbability": round4(s.session_max),
                "quantile": round4(q),
                "sessionMaxQuantile": round4(qmax),
                "percentile": (q * 100.0).round() as i64,
                "sessionMaxPercentile": (qmax * 100.0).round() as i64,
                "modifiedDate": modified,
                "learning": o.model.learning(),
                "topFeatures": drivers,
            })
        })
        .collect();
    json!({"outcomeScores": scores, "modifiedDate": modified})
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}
