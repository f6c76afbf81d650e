//! Evaluate Waymark's live outcome predictions on simulated visits.
//!
//! `cargo run --release -p waymark-sim --example model_eval [train] [test] [seed]`
//!
//! Every simulated event goes through the real pipeline — `parse_web_event`, User-Agent enrichment,
//! `apply_web_event` — and the outcome achievements are added as `OutcomeAchievedEvent`s where the outcome's
//! pattern matches (the funnel's last event), as the rule engine does. The models learn online from the
//! finished training sessions (`SessionReplay::teach`, exactly what the server's maintenance task runs). On
//! held-out sessions, each model scores the session at mid-session (half of the browsing events, before any
//! outcome funnel) and we compare its AUC with the AUC of the simulator's own true probabilities, its
//! expected calibration error (10 bins), and the cost of scoring.

use std::time::Instant;
use waymark_domain::Timestamp;
use waymark_domain::deployment::Deployment;
use waymark_domain::event::{AchievedOutcomeRef, Event, EventType, OutcomeAchievedEventBody};
use waymark_domain::identity::TraitIdentity;
use waymark_domain::ids::{CustomerId, DeploymentId, OrgId};
use waymark_domain::journey::{CustomerState, SessionRules, apply_web_event};
use waymark_domain::limits::InputLimits;
use waymark_domain::predict::{ModelParams, OutcomeModel, SessionFeatures, SessionReplay};
use waymark_domain::session::Session;
use waymark_domain::web_event::{CookieId, WebEventRequest, parse_web_event};
use waymark_enrich::{Enricher, GeoProvider, UserAgentParser};
use waymark_sim::{DemoOutcome, Simulator, Visit, auc, expected_calibration_error};

fn outcome_id(o: DemoOutcome) -> &'static str {
    match o {
        DemoOutcome::Purchase => "purchase",
        DemoOutcome::SupportContact => "support-contact",
        DemoOutcome::NewsletterSignup => "newsletter-signup",
    }
}

/// A visit run through the real pipeline: its stored events (achievements included) and the session after
/// each event.
struct Played {
    events: Vec<Event>,
    sessions: Vec<Session>,
    /// Events (in `events`) before any funnel.
    browse_len: usize,
}

fn play(visit: &Visit, start: Timestamp, deployment: &Deployment, enricher: &Enricher, n: u128) -> Played {
    let limits = InputLimits::default();
    let cookie = CookieId::parse(&visit.visitor.cookie_id).expect("simulated cookie ids are valid");
    let mut state = CustomerState::new(CustomerId(uuid::Uuid::from_u128(n)), cookie, start);
    let mut next = n << 16;
    let mut ids = move |_: Timestamp| {
        next += 1;
        uuid::Uuid::from_u128(next)
    };
    let (mut events, mut sessions) = (Vec::new(), Vec::new());
    let mut browse_len = 0;
    for (i, e) in visit.events.iter().enumerate() {
        let at = start.plus_millis(e.offset_ms);
        let req: WebEventRequest = serde_json::from_value(e.request_at(at)).expect("simulated events are requests");
        let ev = parse_web_event(req, deployment, &limits, at, None, None).expect("simulated events are valid");
        let enrichment = enricher.enrich(ev.user_agent.as_deref(), &ev.hints, ev.ip);
        let applied =
            apply_web_event(&mut state, &ev, &enrichment, &SessionRules::default(), TraitIdentity::default(), &mut ids);
        events.push(applied.event);
        sessions.push(applied.session.clone());
        if i < visit.browse_len {
            browse_len = events.len();
        }
        for o in DemoOutcome::ALL {
            if visit.truth_of(o).achieved_at == Some(i) {
                let mut a = Event::envelope(
                    format!("{}-{i}", outcome_id(o)),
                    String::new(),
                    &applied.session,
                    EventType::OutcomeAchieved,
                    at,
                );
                a.outcome_achieved_event = Some(Box::new(OutcomeAchievedEventBody {
                    outcome: AchievedOutcomeRef {
                        id: outcome_id(o).into(),
                        self_uri: None,
                        display_name: o.display_name().into(),
                        version: 1,
                    },
                    value: None,
                    is_positive: None,
                }));
                events.push(a);
                sessions.push(applied.session.clone());
            }
        }
    }
    Played { events, sessions, browse_len }
}

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let train = args.first().copied().unwrap_or(60_000) as usize;
    let test = args.get(1).copied().unwrap_or(10_000) as usize;
    let seed = args.get(2).copied().unwrap_or(42);
    let enricher = Enricher::new(UserAgentParser::builtin(), GeoProvider::none());
    let deployment = Deployment::new(OrgId(uuid::Uuid::nil()), DeploymentId(uuid::Uuid::nil()), "eval");
    let start = Timestamp::from_unix_millis(1_800_000_000_000);
    let mut sim = Simulator::new(seed);
    // Hyper-parameters can be overridden for experiments: WAYMARK_EVAL_LR, WAYMARK_EVAL_L2, WAYMARK_EVAL_CAL.
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<f64>().ok());
    let defaults = ModelParams::default();
    let params = ModelParams {
        learning_rate: env("WAYMARK_EVAL_LR").unwrap_or(defaults.learning_rate),
        l2: env("WAYMARK_EVAL_L2").unwrap_or(defaults.l2),
        calibration_rate: env("WAYMARK_EVAL_CAL").unwrap_or(defaults.calibration_rate),
        ..defaults
    };
    let mut models: Vec<(DemoOutcome, OutcomeModel)> =
        DemoOutcome::ALL.iter().map(|&o| (o, OutcomeModel::new(params))).collect();

    let t = Instant::now();
    for n in 0..train {
        let visit = sim.visit();
        let played = play(&visit, start, &deployment, &enricher, n as u128);
        let last = played.sessions.last().expect("visits have events");
        let replay = SessionReplay::new(&played.events, last);
        for (o, m) in &mut models {
            replay.teach(m, outcome_id(*o));
        }
    }
    let train_secs = t.elapsed().as_secs_f64();

    let held_out: Vec<(Visit, Played)> = (0..test)
        .map(|n| {
            let v = sim.visit();
            let p = play(&v, start, &deployment, &enricher, (train + n) as u128);
            (v, p)
        })
        .collect();

    println!(
        "Outcome predictions on simulated visits: {train} training sessions (learned in {train_secs:.1} s), {test} held-out, seed {seed}"
    );
    println!(
        "{:<20} {:>8} {:>8} {:>10} {:>7} {:>6} {:>9} {:>8}",
        "outcome", "rate", "AUC", "AUC truth", "ratio", "ECE", "learning", "weights"
    );
    let mut worst_ratio = f64::INFINITY;
    let mut worst_ece: f64 = 0.0;
    for (o, m) in &models {
        let (mut model_p, mut true_p, mut labels) = (Vec::new(), Vec::new(), Vec::new());
        for (v, p) in &held_out {
            let mid = p.browse_len.div_ceil(2).max(1);
            let mut f = SessionFeatures::new();
            for (e, s) in p.events[..mid].iter().zip(&p.sessions) {
                f.observe(e, s);
            }
            let truth = v.truth_of(*o);
            model_p.push(m.score(&f));
            true_p.push(truth.probability);
            labels.push(truth.achieved_at.is_some());
        }
        let rate = labels.iter().filter(|&&l| l).count() as f64 / labels.len() as f64;
        let a_model = auc(&model_p, &labels).unwrap_or(f64::NAN);
        let a_truth = auc(&true_p, &labels).unwrap_or(f64::NAN);
        let ece = expected_calibration_error(&model_p, &labels, 10);
        let ratio = a_model / a_truth;
        worst_ratio = worst_ratio.min(ratio);
        worst_ece = worst_ece.max(ece);
        println!(
            "{:<20} {:>8.3} {:>8.4} {:>10.4} {:>7.3} {:>6.3} {:>9} {:>8}",
            o.display_name(),
            rate,
            a_model,
            a_truth,
            ratio,
            ece,
            m.learning(),
            m.weight_count()
        );
    }

    // Cost of live scoring: every held-out event is observed once and scored by every model, as the server
    // does after each web event.
    let outcomes = models.len();
    let mut events = 0usize;
    let mut sink = 0.0;
    let t = Instant::now();
    for (_, p) in &held_out {
        let mut f = SessionFeatures::new();
        for (e, s) in p.events.iter().zip(&p.sessions) {
            f.observe(e, s);
            for (_, m) in &models {
                sink += m.score(&f);
            }
            events += 1;
        }
    }
    let total = t.elapsed().as_secs_f64() * 1e6;
    let mut features: Vec<SessionFeatures> = Vec::new();
    for (_, p) in held_out.iter().take(2_000) {
        let mut f = SessionFeatures::new();
        for (e, s) in p.events.iter().zip(&p.sessions) {
            f.observe(e, s);
            features.push(f.clone());
        }
    }
    let t = Instant::now();
    for f in &features {
        for (_, m) in &models {
            sink += m.score(f);
        }
    }
    let score_only = t.elapsed().as_secs_f64() * 1e6 / (features.len() * outcomes) as f64;
    let t = Instant::now();
    for f in features.iter().take(20_000) {
        sink += m_explain_len(&models[0].1, f);
    }
    let explain = t.elapsed().as_secs_f64() * 1e6 / features.len().min(20_000) as f64;
    println!(
        "scoring: {:.2} µs per event per outcome (feature update + score, {events} events x {outcomes} outcomes); \
         score alone {:.2} µs; top-5 drivers {:.2} µs   [{}]",
        total / (events * outcomes) as f64,
        score_only,
        explain,
        (sink > 0.0) as u8
    );
    println!("worst AUC ratio {worst_ratio:.3} (need >= 0.95), worst ECE {worst_ece:.3} (need <= 0.05)");
    if !(worst_ratio >= 0.95 && worst_ece <= 0.05) {
        std::process::exit(1);
    }
}

fn m_explain_len(m: &OutcomeModel, f: &SessionFeatures) -> f64 {
    m.explain(f, 5).len() as f64
}
