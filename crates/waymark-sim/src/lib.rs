//! The journey simulator: synthetic visitors of an outdoor-gear shop ("Northwind Outfitters") with personas
//! (buyers, browsers, researchers, support seekers), devices, traffic sources, searches and custom events,
//! and a **known ground-truth probability** of achieving each demo outcome. Deterministic by seed.
//!
//! A [`Visit`] is one web session: its events as Genesys `WebEventRequest` JSON bodies (what a tracker posts to
//! `POST /api/v2/journey/deployments/{id}/webevents`), with offsets in time, the visitor's hidden traits, and
//! for each [`DemoOutcome`] the true probability and whether the dice made it happen. The demo posts visits
//! through the public API; the model evaluation and benchmarks feed them straight into the domain pipeline.
//!
//! How a visit is generated: the visitor's persona, intent (how ready to buy), frustration (how stuck) and
//! engagement (how curious) are drawn first; the true probabilities are fixed functions of those plus device
//! and traffic source ([`Visitor::truth`]); whether each outcome happens is drawn from its probability; the
//! browsing part of the visit is then generated from the same hidden traits (so behaviour carries evidence
//! about them), and each achieved outcome appends its funnel (cart → checkout → `/order/complete`, the
//! contact form, the newsletter sign-up) after the browsing part.

pub mod definitions;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

pub use definitions::{demo_outcomes, demo_segments};

/// The site every simulated visitor browses.
pub const SITE: &str = "https://shop.northwind.example";

/// Who the visitor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Persona {
    /// Came to buy something specific.
    Buyer,
    /// Compares products at length before deciding.
    Researcher,
    /// Looks around, reads the blog.
    Browser,
    /// Has a problem with an order or an account.
    SupportSeeker,
}

impl Persona {
    pub fn as_str(self) -> &'static str {
        match self {
            Persona::Buyer => "buyer",
            Persona::Researcher => "researcher",
            Persona::Browser => "browser",
            Persona::SupportSeeker => "support_seeker",
        }
    }
}

/// The outcomes the demo defines ([`demo_outcomes`] has their Genesys definitions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DemoOutcome {
    /// Reached `/order/complete`.
    Purchase,
    /// Submitted the support contact form.
    SupportContact,
    /// Signed up for the newsletter.
    NewsletterSignup,
}

impl DemoOutcome {
    pub const ALL: [DemoOutcome; 3] =
        [DemoOutcome::Purchase, DemoOutcome::SupportContact, DemoOutcome::NewsletterSignup];

    /// The outcome's display name in [`demo_outcomes`].
    pub fn display_name(self) -> &'static str {
        match self {
            DemoOutcome::Purchase => "Purchase",
            DemoOutcome::SupportContact => "Contacted support",
            DemoOutcome::NewsletterSignup => "Newsletter sign-up",
        }
    }
}

/// Device class with a realistic User-Agent.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceProfile {
    pub category: &'static str,
    pub user_agent: &'static str,
}

const DEVICES: [(DeviceProfile, f64); 5] = [
    (
        DeviceProfile {
            category: "desktop",
            user_agent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        },
        0.35,
    ),
    (
        DeviceProfile {
            category: "desktop",
            user_agent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
        },
        0.15,
    ),
    (
        DeviceProfile {
            category: "mobile",
            user_agent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        },
        0.25,
    ),
    (
        DeviceProfile {
            category: "mobile",
            user_agent: "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
        },
        0.17,
    ),
    (
        DeviceProfile {
            category: "tablet",
            user_agent: "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        },
        0.08,
    ),
];

/// Where the visit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Direct,
    Search,
    Email,
    Paid,
    Social,
}

impl Source {
    /// Landing-page query string and referrer for this source.
    fn landing(self, rng: &mut StdRng) -> (String, Option<&'static str>) {
        match self {
            Source::Direct => (String::new(), None),
            Source::Search => (String::new(), Some("https://www.google.com/search?q=outdoor+gear")),
            Source::Email => {
                let c = pick(rng, &["spring_sale", "new_arrivals", "loyalty"]);
                (format!("?utm_source=newsletter&utm_medium=email&utm_campaign={c}"), None)
            }
            Source::Paid => {
                let c = pick(rng, &["brand", "tents_generic", "shoes_generic"]);
                (format!("?utm_source=google&utm_medium=cpc&utm_campaign={c}"), Some("https://www.google.com/"))
            }
            Source::Social => (
                String::new(),
                Some(pick(rng, &["https://www.facebook.com/", "https://t.co/x1", "https://www.instagram.com/"])),
            ),
        }
    }
}

/// A simulated visitor's hidden traits.
#[derive(Debug, Clone, PartialEq)]
pub struct Visitor {
    pub cookie_id: String,
    pub persona: Persona,
    pub device: DeviceProfile,
    pub source: Source,
    /// 0–1: how ready to buy.
    pub intent: f64,
    /// 0–1: how stuck with a problem.
    pub frustration: f64,
    /// 0–1: how curious about content.
    pub engagement: f64,
    pub ip: String,
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl Visitor {
    /// The true probability that this visitor's visit achieves `outcome`.
    pub fn truth(&self, outcome: DemoOutcome) -> f64 {
        let mobile = self.device.category == "mobile";
        match outcome {
            DemoOutcome::Purchase => {
                let base = match self.persona {
                    Persona::Buyer => -0.3,
                    Persona::Researcher => -1.3,
                    Persona::Browser => -3.0,
                    Persona::SupportSeeker => -3.8,
                };
                let source = match self.source {
                    Source::Email => 0.6,
                    Source::Paid => 0.3,
                    Source::Direct => 0.2,
                    Source::Search => 0.0,
                    Source::Social => -0.4,
                };
                sigmoid(base + source + 1.8 * (self.intent - 0.5) - if mobile { 0.5 } else { 0.0 })
            }
            DemoOutcome::SupportContact => {
                let base = if self.persona == Persona::SupportSeeker { -0.4 } else { -4.5 };
                sigmoid(base + 2.6 * (self.frustration - 0.5))
            }
            DemoOutcome::NewsletterSignup => {
                let base = match self.persona {
                    Persona::Browser => -1.6,
                    Persona::Researcher => -2.4,
                    _ => -3.6,
                };
                let subscribed = if self.source == Source::Email { -1.5 } else { 0.0 };
                sigmoid(base + subscribed + 2.0 * (self.engagement - 0.5) + if mobile { -0.4 } else { 0.2 })
            }
        }
    }
}

/// One event of a visit.
#[derive(Debug, Clone, PartialEq)]
pub struct SimEvent {
    /// Milliseconds after the visit started.
    pub offset_ms: i64,
    /// A Genesys `WebEventRequest` without `createdDate` (set it with [`SimEvent::request_at`]).
    pub body: Value,
}

impl SimEvent {
    /// The `WebEventRequest` JSON with `createdDate` set.
    pub fn request_at(&self, created: waymark_domain::Timestamp) -> Value {
        let mut v = self.body.clone();
        v["createdDate"] = json!(created.to_iso());
        v
    }

    pub fn event_name(&self) -> &str {
        self.body["eventName"].as_str().unwrap_or("")
    }
}

/// The ground truth of one outcome for one visit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Truth {
    pub outcome: DemoOutcome,
    /// The visitor's true probability.
    pub probability: f64,
    /// The event whose arrival achieves the outcome, if it was achieved.
    pub achieved_at: Option<usize>,
}

/// One simulated web session.
#[derive(Debug, Clone, PartialEq)]
pub struct Visit {
    pub visitor: Visitor,
    pub events: Vec<SimEvent>,
    /// Events before any outcome funnel starts.
    pub browse_len: usize,
    pub truth: Vec<Truth>,
}

impl Visit {
    pub fn truth_of(&self, outcome: DemoOutcome) -> Truth {
        self.truth.iter().copied().find(|t| t.outcome == outcome).unwrap_or(Truth {
            outcome,
            probability: 0.0,
            achieved_at: None,
        })
    }
}

fn pick<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

fn weighted<T: Copy>(rng: &mut StdRng, items: &[(T, f64)]) -> T {
    let total: f64 = items.iter().map(|(_, w)| w).sum();
    let mut x = rng.random::<f64>() * total;
    for (t, w) in items {
        if x < *w {
            return *t;
        }
        x -= w;
    }
    items[items.len() - 1].0
}

const CATEGORIES: [&str; 5] = ["tents", "backpacks", "jackets", "trail-shoes", "sleeping-bags"];
const PRODUCTS: [(&str, &str, u32); 10] = [
    ("tents", "ridge-2-tent", 329),
    ("tents", "basecamp-4-tent", 549),
    ("backpacks", "summit-45-pack", 189),
    ("backpacks", "daytrip-22-pack", 89),
    ("jackets", "storm-shell-jacket", 249),
    ("jackets", "down-puffer-jacket", 199),
    ("trail-shoes", "trail-runner-x", 139),
    ("trail-shoes", "alpine-hiker-gtx", 219),
    ("sleeping-bags", "polar-0c-bag", 279),
    ("sleeping-bags", "summer-10c-bag", 119),
];
const BLOG: [&str; 6] = [
    "how-to-choose-a-tent",
    "10-best-day-hikes",
    "layering-guide",
    "packing-list-weekend",
    "trail-running-for-beginners",
    "leave-no-trace",
];
const HELP: [(&str, &str); 5] = [
    ("returns", "returns policy"),
    ("shipping", "shipping time"),
    ("order-status", "where is my order"),
    ("password-reset", "password reset"),
    ("warranty", "warranty claim"),
];

/// Deterministic generator of visits.
pub struct Simulator {
    rng: StdRng,
    visits: u64,
}

/// What a browsing step does.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    Home,
    Category,
    Product,
    Search,
    Blog,
    Help,
    Compare,
    Reviews,
}

impl Simulator {
    pub fn new(seed: u64) -> Self {
        Simulator { rng: StdRng::seed_from_u64(seed), visits: 0 }
    }

    /// Draw a visitor.
    pub fn visitor(&mut self) -> Visitor {
        let rng = &mut self.rng;
        let persona = weighted(
            rng,
            &[
                (Persona::Buyer, 0.22),
                (Persona::Researcher, 0.2),
                (Persona::Browser, 0.38),
                (Persona::SupportSeeker, 0.2),
            ],
        );
        let device =
            weighted(rng, &DEVICES.map(|(d, w)| (d, w)).iter().map(|(d, w)| (d, *w)).collect::<Vec<_>>()).clone();
        let source = weighted(
            rng,
            &[
                (Source::Direct, 0.3),
                (Source::Search, 0.3),
                (Source::Email, 0.12),
                (Source::Paid, 0.13),
                (Source::Social, 0.15),
            ],
        );
        let cookie_id = uuid::Uuid::from_u128(rng.random::<u128>() & !(0xf << 76) | (4 << 76)).to_string();
        Visitor {
            cookie_id,
            persona,
            device,
            source,
            intent: rng.random(),
            frustration: rng.random(),
            engagement: rng.random(),
            ip: format!("203.0.113.{}", rng.random_range(1..255)),
        }
    }

    /// Draw a visitor and their visit.
    pub fn visit(&mut self) -> Visit {
        let v = self.visitor();
        self.visit_of(v)
    }

    /// Generate a visit of `visitor`.
    pub fn visit_of(&mut self, visitor: Visitor) -> Visit {
        self.visits += 1;
        let truths: Vec<(DemoOutcome, f64, bool)> = DemoOutcome::ALL
            .iter()
            .map(|&o| {
                let p = visitor.truth(o);
                (o, p, self.rng.random_bool(p.clamp(0.0, 1.0)))
            })
            .collect();
        let mut b = Builder { rng: &mut self.rng, v: &visitor, events: Vec::new(), at: 0, cart: 0 };
        let p = visitor.persona;
        let n = match p {
            Persona::Buyer => 4 + b.geometric(0.25 + 0.25 * (1.0 - visitor.intent)),
            Persona::Researcher => 5 + b.geometric(0.15),
            Persona::Browser => 3 + b.geometric(0.45 - 0.3 * visitor.engagement),
            Persona::SupportSeeker => 3 + b.geometric(0.5 - 0.2 * visitor.frustration),
        }
        .min(40);
        b.landing();
        while b.events.len() < n {
            let step = b.next_step();
            b.step(step);
        }
        let browse_len = b.events.len();
        let mut truth = Vec::new();
        // Funnels after the browsing part, in a natural order.
        for (o, prob, achieved) in &truths {
            let achieved_at = if *achieved {
                match o {
                    DemoOutcome::NewsletterSignup => Some(b.newsletter()),
                    DemoOutcome::SupportContact => Some(b.support_contact()),
                    DemoOutcome::Purchase => Some(b.checkout()),
                }
            } else {
                None
            };
            truth.push(Truth { outcome: *o, probability: *prob, achieved_at });
        }
        let events = b.events;
        Visit { visitor, events, browse_len, truth }
    }
}

struct Builder<'a> {
    rng: &'a mut StdRng,
    v: &'a Visitor,
    events: Vec<SimEvent>,
    at: i64,
    cart: u32,
}

impl Builder<'_> {
    fn geometric(&mut self, p: f64) -> usize {
        let mut k = 0;
        while k < 60 && !self.rng.random_bool(p.clamp(0.05, 0.95)) {
            k += 1;
        }
        k
    }

    /// Seconds spent on the previous page before this one.
    fn dwell(&mut self) -> i64 {
        let base = match self.v.persona {
            Persona::Researcher => 45.0,
            Persona::Buyer => 20.0,
            Persona::Browser => 15.0 + 50.0 * self.v.engagement,
            Persona::SupportSeeker => 35.0 * (1.2 - 0.8 * self.v.frustration),
        };
        let x: f64 = self.rng.random();
        (base * (0.3 + 1.4 * x) * 1000.0) as i64
    }

    fn push(&mut self, name: &str, path: &str, title: &str, extra: Value) -> usize {
        if !self.events.is_empty() {
            self.at += self.dwell();
        }
        let mut body = json!({
            "customerCookieId": self.v.cookie_id,
            "eventName": name,
            "page": {"url": format!("{SITE}{path}"), "title": title, "lang": "en"},
            "userAgentString": self.v.device.user_agent,
            "ipAddress": self.v.ip,
        });
        if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
            b.extend(e);
        }
        self.events.push(SimEvent { offset_ms: self.at, body });
        self.events.len() - 1
    }

    fn page(&mut self, path: &str, title: &str) -> usize {
        self.push("page_viewed", path, title, json!({}))
    }

    fn landing(&mut self) {
        let (query, referrer) = self.v.source.landing(self.rng);
        let (path, title) = match (self.v.persona, self.v.source) {
            (Persona::SupportSeeker, _) => ("/help".to_string(), "Help centre".to_string()),
            (Persona::Buyer, _) if self.rng.random_bool(0.05 + 0.85 * self.v.intent) => {
                let (_, slug, _) = PRODUCTS[self.rng.random_range(0..PRODUCTS.len())];
                (format!("/p/{slug}-{}", 2000 + self.rng.random_range(0..50)), title_case(slug))
            }
            (Persona::Researcher, _) if self.rng.random_bool(0.5) => {
                let (_, slug, _) = PRODUCTS[self.rng.random_range(0..PRODUCTS.len())];
                (format!("/p/{slug}/reviews"), format!("Reviews: {}", title_case(slug)))
            }
            (_, Source::Paid | Source::Email) | (Persona::Buyer, _) => {
                let c = pick(self.rng, &CATEGORIES);
                (format!("/c/{c}"), format!("{} | Northwind Outfitters", title_case(c)))
            }
            (Persona::Browser, Source::Search | Source::Social) => {
                let b = pick(self.rng, &BLOG);
                (format!("/blog/{b}"), title_case(b))
            }
            _ => ("/".to_string(), "Northwind Outfitters — outdoor gear".to_string()),
        };
        let extra = match referrer {
            Some(r) => json!({ "referrerUrl": r }),
            None => json!({}),
        };
        self.push("page_viewed", &format!("{path}{query}"), &title, extra);
    }

    fn next_step(&mut self) -> Step {
        let (i, f, e) = (self.v.intent, self.v.frustration, self.v.engagement);
        let weights = match self.v.persona {
            Persona::Buyer => vec![
                (Step::Product, 3.0 + 3.0 * i),
                (Step::Category, 1.5),
                (Step::Search, 1.0 + i),
                (Step::Reviews, 0.5),
                (Step::Home, 0.3),
                (Step::Help, 0.2),
            ],
            Persona::Researcher => vec![
                (Step::Product, 3.0 + i),
                (Step::Compare, 1.0 + i),
                (Step::Reviews, 2.0),
                (Step::Category, 1.0),
                (Step::Search, 1.0),
                (Step::Blog, 0.5 + e),
            ],
            Persona::Browser => vec![
                (Step::Blog, 1.0 + 3.0 * e),
                (Step::Home, 1.0),
                (Step::Category, 1.0),
                (Step::Product, 0.5 + 1.5 * i),
                (Step::Search, 0.3),
            ],
            Persona::SupportSeeker => vec![
                (Step::Help, 3.0 + 3.0 * f),
                (Step::Search, 0.5 + 4.0 * f),
                (Step::Home, 0.5),
                (Step::Product, 0.3),
            ],
        };
        weighted(self.rng, &weights)
    }

    fn step(&mut self, step: Step) {
        match step {
            Step::Home => {
                self.page("/", "Northwind Outfitters — outdoor gear");
            }
            Step::Category => {
                let c = pick(self.rng, &CATEGORIES);
                self.page(&format!("/c/{c}"), &format!("{} | Northwind Outfitters", title_case(c)));
            }
            Step::Product => {
                let (_, slug, price) = PRODUCTS[self.rng.random_range(0..PRODUCTS.len())];
                let id = 2000 + self.rng.random_range(0..50);
                self.page(&format!("/p/{slug}-{id}"), &title_case(slug));
                let buyerish = matches!(self.v.persona, Persona::Buyer | Persona::Researcher);
                let p_cart = if buyerish { 0.03 + 0.7 * self.v.intent } else { 0.01 + 0.1 * self.v.intent };
                if self.rng.random_bool(p_cart) {
                    self.cart += 1;
                    self.push(
                        "add_to_cart",
                        &format!("/p/{slug}-{id}"),
                        &title_case(slug),
                        json!({"attributes": {"sku": {"dataType": "string", "value": slug}, "price": {"dataType": "number", "value": price.to_string()}}}),
                    );
                } else if self.rng.random_bool(0.1 + 0.2 * self.v.intent) {
                    self.push(
                        "wishlist_added",
                        &format!("/p/{slug}-{id}"),
                        &title_case(slug),
                        json!({"attributes": {"sku": {"dataType": "string", "value": slug}}}),
                    );
                }
            }
            Step::Search => {
                let q = match self.v.persona {
                    Persona::SupportSeeker => {
                        let f = self.v.frustration;
                        if self.rng.random_bool(0.1 + 0.85 * f) {
                            pick(self.rng, &["refund not received", "cancel order", "item broken", "talk to someone"])
                        } else {
                            HELP[self.rng.random_range(0..HELP.len())].1
                        }
                    }
                    // Ready buyers search for a model by name; others for a kind of product.
                    _ if self.rng.random_bool(self.v.intent * self.v.intent) => {
                        pick(self.rng, &["ridge 2 tent", "storm shell", "alpine hiker gtx", "summit 45", "polar 0c"])
                    }
                    _ => pick(
                        self.rng,
                        &["2 person tent", "waterproof jacket", "hiking boots", "ultralight backpack", "sleeping bag"],
                    ),
                };
                let enc = q.replace(' ', "+");
                self.push("page_viewed", &format!("/search?q={enc}"), "Search results", json!({"searchQuery": q}));
            }
            Step::Blog => {
                let b = pick(self.rng, &BLOG);
                self.page(&format!("/blog/{b}"), &title_case(b));
                if self.rng.random_bool(0.1 + 0.5 * self.v.engagement) {
                    self.push("video_played", &format!("/blog/{b}"), &title_case(b), json!({}));
                }
            }
            Step::Help => {
                let (slug, _) = HELP[self.rng.random_range(0..HELP.len())];
                self.page(&format!("/help/{slug}"), &format!("Help: {}", title_case(slug)));
            }
            Step::Compare => {
                self.page("/compare", "Compare products");
            }
            Step::Reviews => {
                let (_, slug, _) = PRODUCTS[self.rng.random_range(0..PRODUCTS.len())];
                self.page(&format!("/p/{slug}/reviews"), &format!("Reviews: {}", title_case(slug)));
            }
        }
    }

    fn checkout(&mut self) -> usize {
        if self.cart == 0 {
            let (_, slug, price) = PRODUCTS[self.rng.random_range(0..PRODUCTS.len())];
            self.push(
                "add_to_cart",
                &format!("/p/{slug}-2001"),
                &title_case(slug),
                json!({"attributes": {"sku": {"dataType": "string", "value": slug}, "price": {"dataType": "number", "value": price.to_string()}}}),
            );
        }
        self.page("/cart", "Your cart");
        self.page("/checkout/shipping", "Checkout: shipping");
        self.page("/checkout/payment", "Checkout: payment");
        let total = 80 + self.rng.random_range(0..600);
        self.push(
            "page_viewed",
            "/order/complete",
            "Thank you for your order",
            json!({"attributes": {"orderTotal": {"dataType": "number", "value": total.to_string()}}}),
        )
    }

    fn support_contact(&mut self) -> usize {
        self.page("/support/contact", "Contact support");
        self.push(
            "form_submitted",
            "/support/contact",
            "Contact support",
            json!({"attributes": {"form": {"dataType": "string", "value": "support_contact"}}}),
        )
    }

    fn newsletter(&mut self) -> usize {
        let at = self.events.last().map(|e| e.body["page"]["url"].as_str().unwrap_or(SITE).to_string());
        let path = at.as_deref().and_then(|u| u.strip_prefix(SITE)).unwrap_or("/").to_string();
        self.push(
            "newsletter_signup",
            &path,
            "Newsletter",
            json!({"attributes": {"list": {"dataType": "string", "value": "weekly"}}}),
        )
    }
}

fn title_case(slug: &str) -> String {
    slug.split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Area under the ROC curve of `scores` against `labels` (ties count half); `None` without both classes.
pub fn auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut pos, mut i) = (0.0, 0usize, 0usize);
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if labels[k] {
                rank_sum += avg_rank;
                pos += 1;
            }
        }
        i = j + 1;
    }
    let neg = scores.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    Some((rank_sum - (pos * (pos + 1)) as f64 / 2.0) / (pos * neg) as f64)
}

/// Expected calibration error over `bins` equal-width probability bins.
pub fn expected_calibration_error(probs: &[f64], labels: &[bool], bins: usize) -> f64 {
    let bins = bins.max(1);
    let mut sum_p = vec![0.0; bins];
    let mut sum_y = vec![0.0; bins];
    let mut n = vec![0usize; bins];
    for (&p, &y) in probs.iter().zip(labels) {
        let b = ((p * bins as f64) as usize).min(bins - 1);
        sum_p[b] += p;
        sum_y[b] += if y { 1.0 } else { 0.0 };
        n[b] += 1;
    }
    let total = probs.len().max(1) as f64;
    (0..bins).filter(|&b| n[b] > 0).map(|b| (sum_p[b] - sum_y[b]).abs() / total).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visits_are_deterministic_by_seed() {
        let a: Vec<Visit> = {
            let mut s = Simulator::new(7);
            (0..50).map(|_| s.visit()).collect()
        };
        let b: Vec<Visit> = {
            let mut s = Simulator::new(7);
            (0..50).map(|_| s.visit()).collect()
        };
        assert_eq!(a, b);
        let c = Simulator::new(8).visit();
        assert_ne!(a[0].visitor.cookie_id, c.visitor.cookie_id);
    }

    #[test]
    fn achievement_rates_match_the_true_probabilities() {
        let mut s = Simulator::new(1);
        let visits: Vec<Visit> = (0..20_000).map(|_| s.visit()).collect();
        for o in DemoOutcome::ALL {
            let expected: f64 = visits.iter().map(|v| v.truth_of(o).probability).sum::<f64>() / visits.len() as f64;
            let actual = visits.iter().filter(|v| v.truth_of(o).achieved_at.is_some()).count() as f64 / 20_000.0;
            assert!((expected - actual).abs() < 0.01, "{o:?}: expected {expected}, got {actual}");
            assert!(actual > 0.03, "{o:?} is too rare to learn: {actual}");
        }
    }

    #[test]
    fn funnels_follow_browsing_and_end_where_the_outcomes_say() {
        let mut s = Simulator::new(3);
        for _ in 0..2_000 {
            let v = s.visit();
            assert!(v.browse_len >= 2 && v.browse_len <= v.events.len());
            assert!(v.events.windows(2).all(|w| w[0].offset_ms <= w[1].offset_ms));
            if let Some(i) = v.truth_of(DemoOutcome::Purchase).achieved_at {
                assert!(v.events[i].body["page"]["url"].as_str().unwrap().ends_with("/order/complete"));
                assert!(i >= v.browse_len);
            }
            if let Some(i) = v.truth_of(DemoOutcome::SupportContact).achieved_at {
                assert_eq!(v.events[i].event_name(), "form_submitted");
            }
            if let Some(i) = v.truth_of(DemoOutcome::NewsletterSignup).achieved_at {
                assert_eq!(v.events[i].event_name(), "newsletter_signup");
            }
        }
    }

    #[test]
    fn events_are_valid_web_event_requests() {
        use waymark_domain::deployment::Deployment;
        use waymark_domain::ids::{DeploymentId, OrgId};
        use waymark_domain::limits::InputLimits;
        use waymark_domain::web_event::{WebEventRequest, parse_web_event};
        let d = Deployment::new(OrgId(uuid::Uuid::nil()), DeploymentId(uuid::Uuid::nil()), "sim");
        let now = waymark_domain::Timestamp::from_unix_millis(1_800_000_000_000);
        let mut s = Simulator::new(11);
        for _ in 0..300 {
            for e in s.visit().events {
                let at = now.plus_millis(e.offset_ms);
                let req: WebEventRequest = serde_json::from_value(e.request_at(at)).unwrap();
                let parsed = parse_web_event(req, &d, &InputLimits::default(), at, None, None);
                assert!(parsed.is_ok(), "{:?} for {}", parsed.err(), e.body);
            }
        }
    }

    #[test]
    fn auc_and_calibration_error_are_computed_correctly() {
        assert_eq!(auc(&[0.1, 0.2, 0.3, 0.4], &[false, false, true, true]), Some(1.0));
        assert_eq!(auc(&[0.4, 0.3, 0.2, 0.1], &[false, false, true, true]), Some(0.0));
        assert_eq!(auc(&[0.5, 0.5], &[false, true]), Some(0.5));
        assert_eq!(auc(&[0.5, 0.5], &[true, true]), None);
        let ece = expected_calibration_error(&[0.25, 0.25, 0.25, 0.25], &[true, false, false, false], 10);
        assert!(ece.abs() < 1e-12);
        let ece = expected_calibration_error(&[0.9, 0.9], &[false, false], 10);
        assert!((ece - 0.9).abs() < 1e-12);
    }
}
