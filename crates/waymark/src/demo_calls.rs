//! The demo's contact center: known customers who browse the shop, sign in (so their web sessions link to an
//! external contact), and then reach the contact center on one of the journey channels. Every step goes
//! through the public APIs in real time — web events to the tracking endpoint, lifecycle events to
//! `POST /api/v2/journey/conversationevents` — so an agent watching the customer sees the web visit, then the
//! conversation card move from waiting in queue to connected, ended and wrapped up, live.

use std::time::Duration;
use waymark_server::clock::Clock;

/// A demo customer the contact center knows.
struct Caller {
    given: &'static str,
    family: &'static str,
    email: &'static str,
    phone: &'static str,
}

const CALLERS: &[Caller] = &[
    Caller { given: "Ji-woo", family: "Park", email: "jiwoo.park@example.com", phone: "+821023456789" },
    Caller { given: "Maria", family: "Santos", email: "maria.santos@example.com", phone: "+442079460958" },
    Caller { given: "Tom", family: "Becker", email: "tom.becker@example.com", phone: "+12025550143" },
    Caller { given: "Aisha", family: "Khan", email: "aisha.khan@example.com", phone: "+12025550144" },
    Caller { given: "Luca", family: "Rossi", email: "luca.rossi@example.com", phone: "+12025550145" },
];

/// (channel, direction, address kind, subject)
const CONTACTS: &[(&str, &str, &str, &str)] = &[
    ("voice", "inbound", "phone", "Where is my order?"),
    ("webChat", "inbound", "cookie", "Question about sizes"),
    ("email", "inbound", "email", "Return request"),
    ("whatsApp", "inbound", "phone", "Delivery address change"),
    ("voice", "outbound", "phone", "Follow-up on your return"),
    ("sms", "inbound", "phone", "Order status"),
];

const QUEUES: &[(&str, &str)] = &[("q-orders", "Orders"), ("q-returns", "Returns"), ("q-sales", "Sales")];
const AGENTS: &[(&str, &str)] = &[("ag-mina", "Mina Cho"), ("ag-olle", "Olle Berg"), ("ag-rosa", "Rosa Diaz")];
const WRAPUPS: &[(&str, &str)] =
    &[("wc-solved", "Solved"), ("wc-refund", "Refund issued"), ("wc-callback", "Callback planned")];

pub struct CallStream {
    pub base: String,
    pub deployment_id: String,
    pub token: String,
    /// Seconds between two new customer contacts.
    pub every_secs: u64,
    pub seed: u64,
}

impl CallStream {
    /// Runs until aborted. Failures are logged and the stream goes on with the next customer.
    pub async fn run(self) {
        let client = reqwest::Client::new();
        let mut n = self.seed as usize;
        loop {
            let caller = &CALLERS[n % CALLERS.len()];
            let contact = CONTACTS[(n / CALLERS.len() + n) % CONTACTS.len()];
            if let Err(e) = self.one(&client, n, caller, contact).await {
                tracing::warn!(error = %e, "demo conversation failed");
            }
            n = n.wrapping_add(1);
            tokio::time::sleep(Duration::from_secs(self.every_secs)).await;
        }
    }

    async fn one(
        &self,
        client: &reqwest::Client,
        n: usize,
        c: &Caller,
        (channel, direction, address_kind, subject): (&str, &str, &str, &str),
    ) -> anyhow::Result<()> {
        let cookie = format!("demo-{}-{n}", c.given.to_lowercase());
        // A short signed-in web visit first, so the conversation joins a customer with web history.
        let pages = ["/", "/c/tents", "/p/alpine-2", "/account/orders"];
        for (i, path) in pages.iter().enumerate() {
            let mut ev = serde_json::json!({
                "customerCookieId": cookie,
                "eventName": "page_viewed",
                "page": {"url": format!("{}{path}", waymark_sim::SITE), "title": format!("Northwind — {path}")},
                "createdDate": Clock::system().now().to_iso(),
                "userAgentString": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
            });
            if i == pages.len() - 1 {
                ev["eventName"] = "user_identified".into();
                ev["traits"] = serde_json::json!({"email": c.email, "cellPhone": c.phone, "givenName": c.given, "familyName": c.family});
            }
            self.post(client, &format!("/api/v2/journey/deployments/{}/webevents", self.deployment_id), &ev, false)
                .await?;
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        let address = match address_kind {
            "phone" => serde_json::json!({"phone": c.phone}),
            "email" => serde_json::json!({"email": c.email}),
            _ => serde_json::json!({"cookieId": cookie}),
        };
        let conv = format!("demo-conv-{}-{n}", Clock::system().now().unix_millis());
        let queue = QUEUES[n % QUEUES.len()];
        let agent = AGENTS[n % AGENTS.len()];
        let wrap = WRAPUPS[n % WRAPUPS.len()];
        let bot_only = n % 7 == 3 && channel != "voice";
        let mut steps: Vec<(u64, serde_json::Value)> = vec![(
            0,
            serde_json::json!({"type": "started", "channel": channel, "direction": direction, "address": address, "subject": subject}),
        )];
        if bot_only {
            steps.push((4, serde_json::json!({"type": "botOnly"})));
            steps.push((20, serde_json::json!({"type": "disconnected", "disconnectType": "customer"})));
            steps.push((1, serde_json::json!({"type": "ended"})));
        } else {
            steps.push((2, serde_json::json!({"type": "queued", "queue": {"id": queue.0, "name": queue.1}})));
            steps.push((8, serde_json::json!({"type": "connected", "agent": {"id": agent.0, "name": agent.1}})));
            steps.push((40, serde_json::json!({"type": "disconnected", "disconnectType": if n.is_multiple_of(2) { "customer" } else { "agent" }})));
            steps.push((1, serde_json::json!({"type": "ended"})));
            steps.push((10, serde_json::json!({"type": "wrapup", "wrapupCode": {"id": wrap.0, "name": wrap.1}})));
        }
        for (i, (delay, mut ev)) in steps.into_iter().enumerate() {
            tokio::time::sleep(Duration::from_secs(delay)).await;
            ev["id"] = format!("{conv}-{i}").into();
            ev["conversationId"] = conv.clone().into();
            ev["timestamp"] = Clock::system().now().to_iso().into();
            self.post(client, "/api/v2/journey/conversationevents", &ev, true).await?;
        }
        Ok(())
    }

    async fn post(
        &self,
        client: &reqwest::Client,
        path: &str,
        body: &serde_json::Value,
        auth: bool,
    ) -> anyhow::Result<()> {
        let mut req = client.post(format!("{}{path}", self.base)).json(body).header("origin", waymark_sim::SITE);
        if auth {
            req = req.bearer_auth(&self.token);
        }
        let r = req.send().await?;
        if !r.status().is_success() {
            let status = r.status();
            anyhow::bail!("{path} answered {status}: {}", r.text().await.unwrap_or_default());
        }
        Ok(())
    }
}
