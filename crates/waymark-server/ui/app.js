// Waymark: the agent's Customer Journey view.
//
// One ES module, no build step. It reads the JSON API with the sign-in cookie and listens to the live stream
// (Server-Sent Events). Safety rule: everything that came from a visitor or the API reaches the page only as
// text (textContent, attribute values); no HTML is ever built from data.

const PERM = {
  view: "externalContacts:session:view",
  events: "journey:event:view",
  segments: "journey:segment:view",
  outcomes: "journey:outcome:view",
  scores: "journey:outcomeScores:view",
  queues: "routing:queue:search",
  wrapup: "routing:wrapupCode:view",
};
const LAYOUTS = ["25", "50", "75", "100"];
const LANGS = ["en", "ko"];
const CLOCK_SYNC_MS = 15000;

const S = {
  me: null,
  lang: "en",
  msgs: {},
  fallback: {},
  offset: 0, // server clock minus browser clock, in ms
  target: null, // {kind: "contact"|"customer", id}
  contact: null,
  sessions: new Map(),
  events: new Map(), // sessionId -> [event]
  scores: new Map(), // sessionId -> scores JSON | null (none)
  selected: null,
  es: null,
  live: "off",
  pendingSelect: null,
  outcomeNames: new Map(), // outcome id -> display name (from the outcome catalogue, when readable)
  segmentInfo: new Map(), // segment id -> {displayName, color}
  customerSegments: [], // a contact's customer-scope segment assignments (when the API offers them)
};

// ---------- messages, dates, durations ----------

function t(key, vars) {
  let s = S.msgs[key] ?? S.fallback[key] ?? key;
  if (vars) for (const [k, v] of Object.entries(vars)) s = s.split(`{${k}}`).join(String(v));
  return s;
}

async function loadCatalogue(lang) {
  const r = await fetch(`/agent/assets/i18n/${lang}.json`, { credentials: "same-origin" });
  if (!r.ok) throw new Error(`catalogue ${lang}: ${r.status}`);
  return r.json();
}

async function setLanguage(lang, remember) {
  if (!LANGS.includes(lang)) lang = "en";
  if (!S.fallback["app.name"]) S.fallback = await loadCatalogue("en");
  S.msgs = lang === "en" ? S.fallback : await loadCatalogue(lang);
  S.lang = lang;
  document.documentElement.lang = lang;
  if (remember) localStorage.setItem("waymark.lang", lang);
  const sel = document.getElementById("lang");
  if (sel) sel.value = lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  document.title = t("app.title");
}

function initialLanguage() {
  const saved = localStorage.getItem("waymark.lang");
  if (saved && LANGS.includes(saved)) return saved;
  for (const l of [document.documentElement.lang, ...(navigator.languages || [navigator.language])]) {
    const p = String(l || "").toLowerCase().split("-")[0];
    if (LANGS.includes(p)) return p;
  }
  return "en";
}

const now = () => Date.now() + S.offset;

function fmtDate(iso) {
  if (!iso) return "";
  return new Intl.DateTimeFormat(S.lang, { dateStyle: "medium", timeStyle: "medium" }).format(new Date(iso));
}

function fmtTime(iso) {
  if (!iso) return "";
  return new Intl.DateTimeFormat(S.lang, { timeStyle: "medium" }).format(new Date(iso));
}

function fmtRelative(iso) {
  if (!iso) return "";
  const secs = Math.round((Date.parse(iso) - now()) / 1000);
  const rtf = new Intl.RelativeTimeFormat(S.lang, { numeric: "auto" });
  const a = Math.abs(secs);
  if (a < 60) return rtf.format(secs, "second");
  if (a < 3600) return rtf.format(Math.round(secs / 60), "minute");
  if (a < 86400) return rtf.format(Math.round(secs / 3600), "hour");
  return rtf.format(Math.round(secs / 86400), "day");
}

function fmtDuration(totalSecs) {
  const s = Math.max(0, Math.floor(totalSecs || 0));
  const unit = (n, u) => new Intl.NumberFormat(S.lang, { style: "unit", unit: u, unitDisplay: "narrow" }).format(n);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const parts = [];
  if (h) parts.push(unit(h, "hour"));
  if (m || h) parts.push(unit(m, "minute"));
  if (!h) parts.push(unit(sec, "second"));
  return parts.join(" ");
}

function fmtPercent(p) {
  return new Intl.NumberFormat(S.lang, { style: "percent", maximumFractionDigits: 0 }).format(p);
}

// ---------- DOM building (text only) ----------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) {
      // Handlers only as functions: never an inline handler attribute.
      if (typeof v === "function") el.addEventListener(k.slice(2), v);
    }
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.append(c);
    else el.append(document.createTextNode(String(c)));
  }
}

const SVG = "http://www.w3.org/2000/svg";
const ICONS = {
  web: "M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18zM3 12h18M12 3c3 3 3 15 0 18M12 3c-3 3-3 15 0 18",
  page: "M6 3h8l4 4v14H6zM14 3v4h4M9 12h6M9 16h6",
  search: "M10 4a6 6 0 1 0 0 12a6 6 0 1 0 0-12zM14.5 14.5L20 20",
  form: "M7 4h10v17H7zM10 4V2h4v2M10 10h4M10 14h4M10 18h2",
  formAbandoned: "M7 4h10v17H7zM10 10l4 4M14 10l-4 4",
  custom: "M12 3l2.6 5.6 6 .7-4.5 4.1 1.2 6-5.3-3-5.3 3 1.2-6L3.4 9.3l6-.7z",
  segment: "M12 5a7 7 0 1 0 0 14a7 7 0 1 0 0-14z",
  outcome: "M6 21V4h11l-2 4 2 4H6",
  offer: "M4 5h16v10H9l-5 4z",
  conversation: "M4 5h16v10H9l-5 4zM8 9h8M8 12h5",
  voice: "M6 3l3 4-2 3c1 2 3 4 5 5l3-2 4 3-2 4C10 20 4 14 3 6z",
  message: "M4 5h16v10H9l-5 4z",
  email: "M3 6h18v12H3zM3 6l9 7 9-7",
  sms: "M7 2h10v20H7zM10 18h4",
  bot: "M6 8h12v10H6zM12 4v4M9 12h.01M15 12h.01M9 15h6",
  desktop: "M3 4h18v12H3zM9 20h6M12 16v4",
  mobile: "M8 2h8v20H8zM11 18h2",
  tablet: "M5 3h14v18H5zM11 18h2",
  os: "M4 4h16v16H4zM4 9h16M9 9v11",
  browser: "M3 5h18v14H3zM3 9h18M6 7h.01M9 7h.01",
  geo: "M12 21s-7-6-7-11a7 7 0 0 1 14 0c0 5-7 11-7 11zM12 7a3 3 0 1 0 0 6a3 3 0 1 0 0-6z",
  lang: "M4 5h8M8 3v2M5 11c2-1 4-3 5-6M6 8c1 2 3 3 5 3M13 20l4-9 4 9M14.5 17h5",
  back: "M15 5l-7 7 7 7",
};

function icon(name, extraClass) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", `icon icon-${name}${extraClass ? " " + extraClass : ""}`);
  svg.setAttribute("aria-hidden", "true");
  const p = document.createElementNS(SVG, "path");
  p.setAttribute("d", ICONS[name] || ICONS.custom);
  svg.append(p);
  return svg;
}

const can = (p) => !!S.me && S.me.permissions.includes(p);

// ---------- talking to the server ----------

class SignedOut extends Error {}

async function api(path, opts = {}) {
  const headers = { Accept: "application/json" };
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, {
    method: opts.method || "GET",
    credentials: "same-origin",
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  let body = null;
  const text = await r.text();
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
  }
  if (r.status === 401 && !opts.allow401) throw new SignedOut();
  return { status: r.status, ok: r.ok, body };
}

/// All pages of a listing (bounded).
async function listAll(path, maxPages) {
  const out = [];
  let next = path;
  for (let i = 0; next && i < maxPages; i++) {
    const r = await api(next);
    if (!r.ok) return { status: r.status, entities: out, error: r.body };
    out.push(...(r.body.entities || []));
    next = r.body.nextUri || null;
  }
  return { status: 200, entities: out };
}

async function syncClock() {
  const r = await api("/agent/api/me", { allow401: true });
  if (r.status === 401) {
    S.me = null;
    return false;
  }
  if (r.ok && r.body) {
    S.me = r.body;
    setOffset(r.body.serverTime);
  }
  return r.ok;
}

function setOffset(serverIso) {
  const server = Date.parse(serverIso);
  if (!Number.isNaN(server)) S.offset = server - Date.now();
}

// ---------- screens ----------

const main = () => document.getElementById("main");

function screen(...children) {
  const m = main();
  m.replaceChildren(...children.filter(Boolean));
  document.body.classList.remove("detail-open");
}

function showSignIn(message) {
  closeLive();
  S.me = null;
  document.getElementById("signout").hidden = true;
  document.getElementById("user").textContent = "";
  const err = h("p", { id: "signin-error", class: "error", role: "alert" }, message || "");
  const email = h("input", { id: "email", type: "email", name: "email", autocomplete: "username", required: true });
  const password = h("input", {
    id: "password",
    type: "password",
    name: "password",
    autocomplete: "current-password",
    required: true,
  });
  const form = h(
    "form",
    { id: "signin", class: "card-form" },
    h("h1", {}, t("signin.title")),
    h("label", {}, t("signin.email"), email),
    h("label", {}, t("signin.password"), password),
    h("button", { type: "submit", id: "signin-submit" }, t("signin.submit")),
    err,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    err.textContent = "";
    const r = await api("/api/v2/login", {
      method: "POST",
      body: { email: email.value, password: password.value },
      allow401: true,
    });
    if (r.ok) {
      password.value = "";
      await start();
    } else if (r.status === 401) err.textContent = t("signin.wrong");
    else if (r.status === 429) err.textContent = t("signin.tooMany");
    else err.textContent = t("error.generic", { code: (r.body && r.body.code) || r.status });
  });
  screen(form);
  email.focus();
}

function showNoPermission() {
  screen(h("p", { id: "no-permission", class: "notice" }, t("perm.noView", { permission: PERM.view })));
}

function showFind() {
  closeLive();
  const q = h("input", { id: "find-q", type: "search", name: "q", autocomplete: "off" });
  q.setAttribute("placeholder", t("find.placeholder"));
  const results = h("ul", { id: "find-results", class: "results" });
  const status = h("p", { id: "find-status", class: "muted", role: "status" });
  const form = h(
    "form",
    { id: "find", class: "card-form" },
    h("h1", {}, t("find.title")),
    h("label", {}, t("find.label"), q),
    h("button", { type: "submit", id: "find-submit" }, t("find.submit")),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = q.value.trim();
    results.replaceChildren();
    if (!text) return;
    status.textContent = t("find.searching");
    const r = await api(`/api/v2/externalcontacts/contacts?q=${encodeURIComponent(text)}&pageSize=25`);
    const found = r.ok ? r.body.entities || [] : [];
    status.textContent = r.ok ? t("find.count", { count: found.length }) : t("error.generic", { code: r.status });
    for (const c of found) {
      const ids = [...(c.emails || []), ...(c.phoneNumbers || [])].join(" · ");
      results.append(
        h(
          "li",
          {},
          h(
            "a",
            { href: `/agent/contacts/${encodeURIComponent(c.id)}`, class: "result", onclick: navigate },
            h("strong", {}, c.displayName || t("customer.unnamed")),
            " ",
            h("span", { class: "muted" }, ids),
          ),
        ),
      );
    }
    // A cookie id can always be opened directly.
    if (/^[A-Za-z0-9._:-]{1,128}$/.test(text)) {
      results.append(
        h(
          "li",
          {},
          h(
            "a",
            { href: `/agent/customers/${encodeURIComponent(text)}`, class: "result cookie", onclick: navigate },
            t("find.openCookie", { id: text }),
          ),
        ),
      );
    }
  });
  screen(form, status, results, recentList());
  q.focus();
}

function navigate(e) {
  if (e.ctrlKey || e.metaKey || e.shiftKey || e.button === 1) return;
  e.preventDefault();
  history.pushState(null, "", e.currentTarget.getAttribute("href"));
  route();
}

// ---------- the customer view ----------

function currentRoute() {
  const m = location.pathname.match(/^\/agent\/(contacts|customers|conversations)\/([^/]+)\/?$/);
  if (!m) return null;
  return { kind: m[1], id: decodeURIComponent(m[2]) };
}

async function route() {
  if (!S.me) return showSignIn();
  if (!can(PERM.view)) return showNoPermission();
  const r = currentRoute();
  if (!r) return showFind();
  if (r.kind === "conversations") {
    const c = await api(`/agent/api/conversations/${encodeURIComponent(r.id)}`);
    if (!c.ok) return screen(h("p", { id: "not-found", class: "notice" }, t("error.notFound")));
    S.pendingSelect = c.body.sessionId;
    if (c.body.contactId) return openCustomer({ kind: "contact", id: c.body.contactId });
    if (c.body.customerId) return openCustomer({ kind: "customer", id: c.body.customerId });
    return screen(h("p", { id: "not-found", class: "notice" }, t("error.notFound")));
  }
  return openCustomer({ kind: r.kind === "contacts" ? "contact" : "customer", id: r.id });
}

/// Names and colours of outcomes and segments, for sessions that carry only their ids. Absent or unreadable
/// catalogues are fine: the page then shows what the events carry.
async function loadCatalogues() {
  const jobs = [];
  if (can(PERM.outcomes) && !S.outcomeNames.size) {
    jobs.push(
      listAll("/api/v2/journey/outcomes?pageSize=200", 1).then((r) => {
        for (const o of r.entities) if (o.id) S.outcomeNames.set(o.id, o.displayName || o.name || o.id);
      }),
    );
  }
  if (can(PERM.segments) && !S.segmentInfo.size) {
    jobs.push(
      listAll("/api/v2/journey/segments?pageSize=200", 3).then((r) => {
        for (const g of r.entities) if (g.id) S.segmentInfo.set(g.id, { displayName: g.displayName, color: g.color });
      }),
    );
  }
  await Promise.all(jobs.map((j) => j.catch(() => {})));
}

function remember(name) {
  const tg = S.target;
  if (!tg) return;
  let recent = [];
  try {
    recent = JSON.parse(localStorage.getItem("waymark.recent") || "[]");
  } catch {
    recent = [];
  }
  if (!Array.isArray(recent)) recent = [];
  recent = recent.filter((r) => r && !(r.kind === tg.kind && r.id === tg.id));
  recent.unshift({ kind: tg.kind, id: tg.id, name: String(name).slice(0, 200) });
  localStorage.setItem("waymark.recent", JSON.stringify(recent.slice(0, 8)));
}

function recentList() {
  let recent = [];
  try {
    recent = JSON.parse(localStorage.getItem("waymark.recent") || "[]");
  } catch {
    recent = [];
  }
  if (!Array.isArray(recent)) return null;
  const items = recent
    .filter((r) => r && (r.kind === "contact" || r.kind === "customer") && typeof r.id === "string")
    .map((r) =>
      h(
        "li",
        {},
        h(
          "a",
          {
            href: `/agent/${r.kind === "contact" ? "contacts" : "customers"}/${encodeURIComponent(r.id)}`,
            class: "recent",
            onclick: navigate,
          },
          String(r.name || r.id),
        ),
      ),
    );
  if (!items.length) return null;
  return h("section", { id: "recent", class: "results" }, h("h2", {}, t("find.recent")), h("ul", { class: "plain" }, items));
}

async function openCustomer(target) {
  closeLive();
  S.target = target;
  S.contact = null;
  S.sessions = new Map();
  S.events = new Map();
  S.scores = new Map();
  S.selected = null;
  screen(h("p", { class: "muted" }, t("view.loading")));
  connectLive();
  await loadCatalogues();
  await loadSnapshot();
}

async function loadSnapshot() {
  const target = S.target;
  let list;
  if (target.kind === "contact") {
    const c = await api(`/api/v2/externalcontacts/contacts/${encodeURIComponent(target.id)}`);
    if (c.status === 404) return screen(h("p", { id: "not-found", class: "notice" }, t("error.notFound")));
    if (c.ok) S.contact = c.body;
    S.customerSegments = [];
    if (can(PERM.segments)) {
      const g = await api(`/api/v2/externalcontacts/contacts/${encodeURIComponent(target.id)}/journey/segments`);
      if (g.ok && g.body && Array.isArray(g.body.entities)) S.customerSegments = g.body.entities.filter((a) => a && a.segment);
    }
    list = await listAll(
      `/api/v2/externalcontacts/contacts/${encodeURIComponent(target.id)}/journey/sessions?pageSize=200`,
      5,
    );
  } else {
    list = await listAll(`/api/v2/journey/customers/cookie/${encodeURIComponent(target.id)}/sessions?pageSize=200`, 5);
  }
  if (S.target !== target) return;
  if (list.status === 404) return screen(h("p", { id: "not-found", class: "notice" }, t("error.notFound")));
  // Keep what the live stream delivered while the snapshot loaded, when it is newer than the snapshot.
  const merged = new Map(list.entities.map((s) => [s.id, s]));
  for (const [id, s] of S.sessions) if (!merged.has(id) || newer(s, merged.get(id))) merged.set(id, s);
  S.sessions = merged;
  const want = S.pendingSelect && S.sessions.has(S.pendingSelect) ? S.pendingSelect : S.selected;
  S.pendingSelect = null;
  S.selected = want && S.sessions.has(want) ? want : (ordered()[0] || {}).id || null;
  renderView();
  if (S.selected) await loadDetails(S.selected);
}

function newer(a, b) {
  if ((a.eventCount || 0) !== (b.eventCount || 0)) return (a.eventCount || 0) > (b.eventCount || 0);
  const at = (s) => Math.max(Date.parse(s.lastActivityDate || 0) || 0, Date.parse(s.endedDate || 0) || 0);
  return at(a) > at(b);
}

function ordered() {
  return [...S.sessions.values()].sort((a, b) => Date.parse(b.createdDate) - Date.parse(a.createdDate));
}

function statusOf(s) {
  if (s.type === "conversation") return s.endedDate ? "inactive" : "active";
  if (s.endedDate) return "inactive";
  const n = now();
  if (s.awayDate && n >= Date.parse(s.awayDate)) return "inactive";
  if (s.idleDate && n >= Date.parse(s.idleDate)) return "idle";
  return "active";
}

const STATUS_LABEL = {
  active: () => t("status.active"),
  idle: () => t("status.idle"),
  inactive: () => t("status.inactive"),
};

function channelOf(s) {
  if (s.type !== "conversation") return "web";
  const c = ((s.conversationChannels || [])[0] || {}).type || "";
  const lc = c.toLowerCase();
  if (lc.includes("voice") || lc.includes("call")) return "voice";
  if (lc.includes("email")) return "email";
  if (lc.includes("sms")) return "sms";
  return "message";
}

const CHANNEL_LABEL = {
  web: () => t("channel.web"),
  voice: () => t("channel.voice"),
  email: () => t("channel.email"),
  sms: () => t("channel.sms"),
  message: () => t("channel.message"),
};

const DIRECTION_LABEL = {
  inbound: () => t("direction.inbound"),
  outbound: () => t("direction.outbound"),
};

const STATE_LABEL = {
  waiting: () => t("state.waiting"),
  queued: () => t("state.waiting"),
  connected: () => t("state.connected"),
  endedbycustomer: () => t("state.endedByCustomer"),
  endedbyagent: () => t("state.endedByAgent"),
  abandoned: () => t("state.abandoned"),
  wrapup: () => t("state.wrapup"),
  ended: () => t("state.ended"),
};

const DISCONNECT_LABEL = {
  // Genesys `lastUserDisconnectType` is seen from the agent: `Client` = the agent's side, `Peer` = the customer.
  customer: () => t("disconnect.customer"),
  peer: () => t("disconnect.customer"),
  agent: () => t("disconnect.agent"),
  client: () => t("disconnect.agent"),
  system: () => t("disconnect.system"),
  transfer: () => t("disconnect.transfer"),
  timeout: () => t("disconnect.timeout"),
};

function label(map, value) {
  if (!value) return "";
  const f = map[String(value).replace(/[^a-z]/gi, "").toLowerCase()];
  return f ? f() : String(value);
}

function sessionTitle(s) {
  if (s.type === "conversation") {
    const parts = [CHANNEL_LABEL[channelOf(s)]()];
    if (s.originatingDirection) parts.push(label(DIRECTION_LABEL, s.originatingDirection));
    return parts.join(" · ");
  }
  const evs = S.events.get(s.id);
  const first = evs && evs.find((e) => e.webEvent && e.webEvent.page);
  return (first && first.webEvent.page.title) || (s.lastPage && (s.lastPage.title || s.lastPage.hostname)) || t("channel.web");
}

function sessionDuration(s) {
  if (s.type === "web" && !s.endedDate && s.lastActivityDate) {
    return Math.max(s.durationInSeconds || 0, (Date.parse(s.lastActivityDate) - Date.parse(s.createdDate)) / 1000);
  }
  return s.durationInSeconds || 0;
}

function dot(s) {
  const st = statusOf(s);
  return h(
    "span",
    { class: `status status-${st}`, "data-status": st },
    h("span", { class: "dot", "aria-hidden": "true" }),
    h("span", { class: "status-label" }, STATUS_LABEL[st]()),
  );
}

function card(s) {
  const ch = channelOf(s);
  const line2 = [];
  if (s.type === "conversation") {
    if (s.conversationState) line2.push(label(STATE_LABEL, s.conversationState));
    if (s.lastUserDisposition) line2.push(t("card.wrapup", { code: s.lastUserDisposition.name || s.lastUserDisposition.code }));
    if (s.lastConnectedQueue) line2.push(s.lastConnectedQueue.name || s.lastConnectedQueue.id);
    if (s.lastConnectedUser) line2.push(s.lastConnectedUser.name || s.lastConnectedUser.id);
  } else {
    line2.push(t("card.pages", { count: s.pageviewCount || 0 }));
    if (s.lastPage) line2.push(t("card.lastPage", { title: s.lastPage.title || s.lastPage.pathname || s.lastPage.url }));
    if ((s.searchTerms || []).length) line2.push(t("card.searches", { count: s.searchTerms.length }));
  }
  const li = h(
    "li",
    {
      class: `card${s.id === S.selected ? " selected" : ""}`,
      "data-session-id": s.id,
      "data-type": s.type,
      tabindex: "0",
      role: "button",
      "aria-pressed": s.id === S.selected ? "true" : "false",
    },
    h(
      "div",
      { class: "line1" },
      dot(s),
      h("span", { class: "channel", title: CHANNEL_LABEL[ch]() }, icon(ch)),
      s.botOnly ? h("span", { class: "bot", title: t("card.bot") }, icon("bot"), h("span", { class: "sr" }, t("card.bot"))) : null,
      h("span", { class: "title" }, sessionTitle(s)),
      h(
        "span",
        { class: "meta" },
        h("span", { class: "duration" }, fmtDuration(sessionDuration(s))),
        " · ",
        h("span", { class: "when", title: fmtDate(s.createdDate) }, fmtRelative(s.lastActivityDate || s.createdDate)),
      ),
    ),
    h("div", { class: "line2 muted" }, line2.join(" · ")),
  );
  const open = () => select(s.id);
  li.addEventListener("click", open);
  li.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      open();
    }
  });
  return li;
}

async function select(id) {
  S.selected = id;
  document.body.classList.add("detail-open");
  renderList();
  renderDetails();
  await loadDetails(id);
}

async function loadDetails(id) {
  const s = S.sessions.get(id);
  if (!s) return;
  const jobs = [];
  if (can(PERM.events) && !S.events.has(id)) {
    jobs.push(
      listAll(`/api/v2/journey/sessions/${encodeURIComponent(id)}/events?pageSize=200`, 10).then((r) => {
        if (r.status === 200) {
          const have = S.events.get(id) || [];
          const seen = new Set(r.entities.map((e) => e.id));
          S.events.set(id, [...r.entities, ...have.filter((e) => !seen.has(e.id))]);
        }
      }),
    );
  }
  if (can(PERM.scores) && s.type === "web" && !S.scores.has(id)) {
    jobs.push(
      api(`/api/v2/journey/sessions/${encodeURIComponent(id)}/outcomescores`).then((r) => {
        S.scores.set(id, r.ok ? r.body : null);
      }),
    );
  }
  await Promise.all(jobs);
  if (S.selected === id) {
    renderList();
    renderDetails();
  }
}

function renderView() {
  const view = h(
    "div",
    { id: "view" },
    h("section", { id: "sessions", "aria-label": t("sessions.title") }, h("h2", {}, t("sessions.title")), h("ul", { id: "session-list" })),
    h("section", { id: "details" }),
  );
  screen(h("header", { id: "customer-header" }), view);
  renderHeader();
  renderList();
  renderDetails();
}

function renderHeader() {
  const el = document.getElementById("customer-header");
  if (!el) return;
  const c = S.contact;
  const all = [...S.sessions.values()];
  const name = (c && (c.displayName || (c.emails || [])[0] || (c.phoneNumbers || [])[0])) ||
    t("customer.unknown", { id: String(S.target.id).slice(0, 8) });
  const ids = [];
  if (c) {
    for (const e of c.emails || []) if (e !== name) ids.push(h("span", { class: "ident" }, e));
    for (const p of c.phoneNumbers || []) if (p !== name) ids.push(h("span", { class: "ident" }, p));
    if ((c.cookieIds || []).length) ids.push(h("span", { class: "ident" }, t("customer.cookies", { count: c.cookieIds.length })));
  } else {
    ids.push(h("span", { class: "ident" }, t("customer.cookie", { id: S.target.id })));
  }
  const chips = [];
  if (can(PERM.segments)) {
    const seen = new Set();
    for (const a of S.customerSegments) {
      if (!seen.has(a.segment.id)) {
        seen.add(a.segment.id);
        chips.push(segmentChip({ segment: a.segment }));
      }
    }
    for (const evs of S.events.values()) {
      for (const e of evs) {
        const a = e.segmentAssignmentEvent;
        if (a && a.scope === "customer" && !seen.has(a.segment.id)) {
          seen.add(a.segment.id);
          chips.push(segmentChip(a));
        }
      }
    }
  }
  remember(name);
  el.replaceChildren();
  append(el, [
    h("h1", { id: "customer-name" }, name),
    all.some((s) => s.authenticated) ? h("span", { class: "badge" }, t("customer.authenticated")) : null,
    h("div", { class: "identifiers" }, ids),
    chips.length ? h("div", { id: "customer-segments", class: "chips" }, chips) : null,
    h("a", { href: "/agent", class: "back-find", onclick: navigate }, t("nav.find")),
  ]);
}

function segmentChip(a) {
  const known = S.segmentInfo.get(a.segment.id) || {};
  const color = a.color || known.color;
  const chip = h("span", { class: "chip", "data-segment-id": a.segment.id }, h("span", { class: "swatch" }), a.displayName || known.displayName || a.segment.id);
  if (color && /^#[0-9a-fA-F]{3,8}$/.test(color)) chip.firstChild.style.backgroundColor = color;
  return chip;
}

function renderList() {
  const ul = document.getElementById("session-list");
  if (!ul) return;
  const list = ordered();
  if (!list.length) {
    ul.replaceChildren(h("li", { class: "empty muted" }, t("sessions.none")));
    return;
  }
  ul.replaceChildren(...list.map(card));
}

function section(id, titleKey, wide, ...children) {
  return h("section", { id, class: `panel ${wide}` }, h("h3", {}, t(titleKey)), children);
}

function kv(k, v, iconName) {
  if (v === undefined || v === null || v === "") return null;
  return h("div", { class: "kv" }, iconName ? icon(iconName) : null, h("span", { class: "k" }, k), h("span", { class: "v" }, String(v)));
}

function renderDetails() {
  const el = document.getElementById("details");
  if (!el) return;
  const s = S.sessions.get(S.selected);
  if (!s) {
    el.replaceChildren(h("p", { class: "muted" }, t("details.none")));
    return;
  }
  const back = h("button", { type: "button", id: "back", class: "back" }, icon("back"), t("details.back"));
  back.addEventListener("click", () => {
    document.body.classList.remove("detail-open");
    const c = document.querySelector(`.card[data-session-id="${CSS.escape(s.id)}"]`);
    if (c) c.focus();
  });
  const parts = [back, h("h2", { id: "details-title" }, sessionTitle(s), " ", dot(s))];
  if (can(PERM.events)) parts.push(renderMap(s));
  if (s.type === "conversation") parts.push(renderMessageDetails(s));
  if (s.type === "web") {
    if (can(PERM.segments)) parts.push(renderSegments(s));
    parts.push(renderSearches(s));
    if (can(PERM.outcomes) || can(PERM.scores)) parts.push(renderOutcomes(s));
    parts.push(renderDevice(s), renderReferrer(s), renderAttributes(s));
  }
  el.replaceChildren(...parts.filter(Boolean));
}

const WEB_KIND = {
  page_viewed: "page",
  searched: "search",
  form_submitted: "form",
  form_abandoned: "formAbandoned",
};

const OFFER_STATE = {
  qualified: () => t("offer.qualified"),
  offered: () => t("offer.offered"),
  accepted: () => t("offer.accepted"),
  rejected: () => t("offer.rejected"),
  ignored: () => t("offer.ignored"),
  timedout: () => t("offer.timedout"),
  errored: () => t("offer.errored"),
  abandoned: () => t("offer.abandoned"),
  completed: () => t("offer.completed"),
  frequencycapreached: () => t("offer.frequencyCapReached"),
  blocked: () => t("offer.blocked"),
};

function mapItem(e) {
  const at = fmtTime(e.createdDate);
  if (e.webEvent) {
    const w = e.webEvent;
    const kind = WEB_KIND[w.eventName] || "custom";
    let text;
    if (kind === "page") text = w.page.title || w.page.pathname || w.page.url;
    else if (kind === "search") text = t("map.searched", { query: w.searchQuery || "" });
    else if (kind === "form") text = t("map.formSubmitted", { title: w.page.title || w.page.pathname });
    else if (kind === "formAbandoned") text = t("map.formAbandoned", { title: w.page.title || w.page.pathname });
    else text = t("map.custom", { name: w.eventName });
    return { kind, text, url: w.page && w.page.url, at };
  }
  if (e.webActionEvent) {
    const a = e.webActionEvent;
    const state = label(OFFER_STATE, a.action.state);
    let text = t("map.offer", { name: a.actionMap.displayName, state });
    if (a.blockedReason) text += " · " + t("map.blocked", { reason: a.blockedReason });
    return { kind: "offer", state: String(a.action.state || "").toLowerCase(), blocked: !!a.blockedReason, text, at };
  }
  if (e.segmentAssignmentEvent) {
    const a = e.segmentAssignmentEvent;
    const known = S.segmentInfo.get(a.segment.id) || {};
    const name = a.displayName || known.displayName || a.segment.id;
    return { kind: "segment", color: a.color || known.color, text: t("map.segment", { name }), at };
  }
  if (e.outcomeAchievedEvent) {
    return { kind: "outcome", text: t("map.outcome", { name: e.outcomeAchievedEvent.outcome.displayName }), at };
  }
  if (e.conversationEvent) {
    const c = e.conversationEvent;
    const who = [c.queue && (c.queue.name || c.queue.id), c.user && (c.user.name || c.user.id)].filter(Boolean).join(" · ");
    return { kind: "conversation", text: who ? `${c.kind} · ${who}` : c.kind, at };
  }
  return { kind: "custom", text: e.eventType, at };
}

function renderMap(s) {
  const evs = (S.events.get(s.id) || []).slice().sort((a, b) => Date.parse(a.createdDate) - Date.parse(b.createdDate));
  const ol = h("ol", { id: "map-list", class: "map" });
  // Repeated visits of the same page in a row collapse into one icon marked ×N (the times are in its tooltip).
  const items = [];
  for (const e of evs) {
    const m = mapItem(e);
    const prev = items[items.length - 1];
    if (m.kind === "page" && prev && prev.kind === "page" && prev.url === m.url) {
      prev.times.push(m.at);
      prev.lastId = e.id;
    } else {
      items.push({ ...m, times: [m.at], lastId: e.id });
    }
  }
  for (const m of items) {
    const n = m.times.length;
    const text = n > 1 ? t("map.repeated", { text: m.text, count: n }) : m.text;
    const tip = [text, m.url, m.times.join(", ")].filter(Boolean).join("\n");
    const glyph = icon(m.kind);
    const li = h(
      "li",
      { class: `map-icon kind-${m.kind}`, "data-kind": m.kind, "data-event-id": m.lastId, tabindex: "0", title: tip, "aria-label": tip },
      h("span", { class: "glyph" }, glyph, n > 1 ? h("span", { class: "count" }, `×${n}`) : null),
      h("span", { class: "map-label" }, m.text),
      m.url ? h("span", { class: "map-url" }, m.url) : null,
      h("span", { class: "map-time muted" }, m.times[m.times.length - 1]),
    );
    if (n > 1) li.setAttribute("data-count", String(n));
    if (m.state) li.setAttribute("data-state", m.state);
    if (m.blocked) li.classList.add("blocked");
    if (m.color && /^#[0-9a-fA-F]{3,8}$/.test(m.color)) glyph.style.color = m.color;
    ol.append(li);
  }
  return h("section", { id: "map", class: "panel" }, h("h3", {}, t("map.title")), evs.length ? ol : h("p", { class: "muted" }, t("map.empty")));
}

function renderMessageDetails(s) {
  const d = s.lastUserDisposition;
  return section(
    "message-details",
    "message.title",
    "",
    kv(t("message.state"), label(STATE_LABEL, s.conversationState)),
    kv(t("message.direction"), label(DIRECTION_LABEL, s.originatingDirection)),
    kv(t("message.lastQueue"), s.lastConnectedQueue && (s.lastConnectedQueue.name || s.lastConnectedQueue.id)),
    kv(t("message.lastAgent"), s.lastConnectedUser && (s.lastConnectedUser.name || s.lastConnectedUser.id)),
    kv(t("message.wrapup"), d && (d.name || d.code)),
    kv(t("message.duration"), fmtDuration(s.durationInSeconds)),
    kv(t("message.disconnect"), label(DISCONNECT_LABEL, s.lastUserDisconnectType)),
    s.botOnly ? kv(t("message.bot"), t("message.botOnly")) : null,
    s.conversationSubject ? kv(t("message.subject"), s.conversationSubject) : null,
  );
}

function renderSegments(s) {
  const ul = h("ul", { class: "plain" });
  const evs = (S.events.get(s.id) || []).filter((e) => e.segmentAssignmentEvent);
  evs.sort((a, b) => Date.parse(a.createdDate) - Date.parse(b.createdDate));
  const shown = new Set();
  for (const e of evs) {
    const a = e.segmentAssignmentEvent;
    shown.add(a.segment.id);
    ul.append(h("li", { class: "segment" }, segmentChip(a), " ", h("span", { class: "muted" }, fmtTime(e.createdDate))));
  }
  for (const a of s.segmentAssignments || []) {
    if (shown.has(a.segment.id)) continue;
    ul.append(h("li", { class: "segment" }, segmentChip({ segment: a.segment }), " ", h("span", { class: "muted" }, fmtTime(a.assignedDate))));
  }
  return section("segments", "segments.title", "sec-75", ul.childElementCount ? ul : h("p", { class: "muted" }, t("segments.none")));
}

function renderSearches(s) {
  const ul = h("ul", { class: "plain" });
  const evs = (S.events.get(s.id) || []).filter((e) => e.webEvent && e.webEvent.searchQuery);
  if (evs.length) {
    for (const e of evs) ul.append(h("li", { class: "search" }, icon("search"), h("span", {}, e.webEvent.searchQuery), " ", h("span", { class: "muted" }, fmtTime(e.createdDate))));
  } else {
    for (const q of s.searchTerms || []) ul.append(h("li", { class: "search" }, icon("search"), h("span", {}, q)));
  }
  return section("searches", "searches.title", "sec-75", ul.childElementCount ? ul : h("p", { class: "muted" }, t("searches.none")));
}

function scoreEntities(body) {
  if (!body) return [];
  if (Array.isArray(body)) return body;
  return body.entities || body.outcomeScores || body.scores || [];
}

function renderOutcomes(s) {
  const body = [];
  const achieved = new Map();
  for (const e of S.events.get(s.id) || []) {
    if (e.outcomeAchievedEvent) achieved.set(e.outcomeAchievedEvent.outcome.id, e.outcomeAchievedEvent.outcome.displayName);
  }
  for (const a of s.outcomeAchievements || []) {
    if (!achieved.has(a.outcome.id)) achieved.set(a.outcome.id, S.outcomeNames.get(a.outcome.id) || a.outcome.id);
  }
  if (can(PERM.scores)) {
    const scores = scoreEntities(S.scores.get(s.id));
    if (!scores.length) body.push(h("p", { class: "muted", id: "no-scores" }, t("outcomes.noScores")));
    for (const sc of scores) {
      const o = sc.outcome || {};
      const name = S.outcomeNames.get(o.id) || o.displayName || o.name || o.id || "";
      const p = Number(sc.probability) || 0;
      const max = Number(sc.sessionMaxProbability ?? p) || 0;
      const fill = h("span", { class: "fill" });
      fill.style.width = `${Math.round(Math.min(1, Math.max(0, p)) * 100)}%`;
      const tick = h("span", { class: "tick" });
      tick.style.left = `${Math.round(Math.min(1, Math.max(0, max)) * 100)}%`;
      const drivers = (sc.topFeatures || sc.topDrivers || sc.drivers || [])
        .slice(0, 5)
        .map((d) => (typeof d === "string" ? d : d.label || d.feature || d.name || ""))
        .filter(Boolean);
      const learning = sc.learning === true || sc.status === "learning";
      const row = h(
        "div",
        { class: "score", "data-outcome-id": o.id || "", title: drivers.length ? t("outcomes.drivers", { list: drivers.join(", ") }) : null },
        h("span", { class: "name" }, name, achieved.has(o.id) ? h("span", { class: "achieved", title: t("outcomes.achieved") }, " ✓") : null),
        learning
          ? h("span", { class: "muted learning" }, t("outcomes.learning"))
          : h("span", { class: "bar", role: "meter", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(Math.round(p * 100)) }, fill, tick),
        learning ? null : h("span", { class: "pct" }, fmtPercent(p)),
        sc.quantile !== undefined && !learning ? h("span", { class: "quantile muted" }, t("outcomes.quantile", { pct: fmtPercent(Number(sc.quantile) || 0) })) : null,
        drivers.length ? h("span", { class: "drivers muted sec-100" }, t("outcomes.drivers", { list: drivers.join(", ") })) : null,
      );
      body.push(row);
    }
  }
  if (can(PERM.outcomes) && achieved.size) {
    body.push(h("ul", { class: "plain achieved-list" }, [...achieved.values()].map((n) => h("li", {}, icon("outcome"), t("outcomes.achievedName", { name: n })))));
  }
  return section("outcomes", "outcomes.title", "sec-75", body.length ? body : h("p", { class: "muted" }, t("outcomes.none")));
}

function flag(cc) {
  if (!/^[A-Za-z]{2}$/.test(cc || "")) return "";
  return String.fromCodePoint(...[...cc.toUpperCase()].map((c) => 0x1f1a5 + c.charCodeAt(0)));
}

const DEVICE_LABEL = {
  desktop: () => t("device.desktop"),
  mobile: () => t("device.mobile"),
  tablet: () => t("device.tablet"),
  bot: () => t("device.bot"),
  other: () => t("device.other"),
};

function renderDevice(s) {
  const g = s.geolocation;
  const geo = g && (g.locality || g.regionName || g.countryName || g.country)
    ? [flag(g.country), [g.locality, g.regionName || g.region, g.countryName || g.country].filter(Boolean).join(", ")].filter(Boolean).join(" ")
    : t("device.noGeo");
  const d = s.device;
  const b = s.browser;
  const cat = d && d.category ? String(d.category).toLowerCase() : "";
  return section(
    "device",
    "device.title",
    "sec-100",
    kv(t("device.location"), geo, "geo"),
    d ? kv(t("device.type"), label(DEVICE_LABEL, cat) || d.type, ["mobile", "tablet"].includes(cat) ? cat : "desktop") : null,
    d ? kv(t("device.os"), [d.osFamily, d.osVersion].filter(Boolean).join(" "), "os") : null,
    b ? kv(t("device.browser"), [b.family, b.version].filter(Boolean).join(" "), "browser") : null,
    b && b.lang ? kv(t("device.language"), b.lang, "lang") : null,
    s.ipAddress ? kv(t("device.ip"), s.ipAddress) : null,
    !d && !b ? h("p", { class: "muted" }, t("device.none")) : null,
  );
}

function renderReferrer(s) {
  const r = s.referrer;
  const c = s.mktCampaign;
  const rows = [];
  if (r) {
    rows.push(kv(t("referrer.name"), r.name || r.hostname), kv(t("referrer.medium"), r.medium), kv(t("referrer.url"), r.url));
  }
  if (c) {
    rows.push(
      kv(t("campaign.source"), c.source),
      kv(t("campaign.medium"), c.medium),
      kv(t("campaign.name"), c.name),
      kv(t("campaign.term"), c.term),
      kv(t("campaign.content"), c.content),
    );
  }
  return section("referrer", "referrer.title", "sec-100", rows.filter(Boolean).length ? rows : h("p", { class: "muted" }, t("referrer.direct")));
}

function renderAttributes(s) {
  const attrs = Object.entries(s.attributes || {});
  const dl = h("dl", { class: "attrs" });
  for (const [k, v] of attrs) dl.append(h("dt", {}, k), h("dd", {}, v && typeof v === "object" ? v.value : String(v)));
  return section("attributes", "attributes.title", "sec-100", attrs.length ? dl : h("p", { class: "muted" }, t("attributes.none")));
}

// ---------- live updates ----------

function setLive(st) {
  S.live = st;
  const el = document.getElementById("live");
  el.dataset.state = st;
  el.textContent = st === "on" ? t("live.on") : st === "reconnecting" ? t("live.reconnecting") : "";
}

function closeLive() {
  if (S.es) S.es.close();
  S.es = null;
  setLive("off");
}

function connectLive() {
  const tg = S.target;
  const q = tg.kind === "contact" ? `contactId=${encodeURIComponent(tg.id)}` : `customerCookieId=${encodeURIComponent(tg.id)}`;
  const es = new EventSource(`/api/v2/journey/live?${q}`);
  S.es = es;
  const parse = (e) => {
    try {
      return JSON.parse(e.data);
    } catch {
      return null;
    }
  };
  es.addEventListener("hello", (e) => {
    const d = parse(e);
    if (d && d.serverTime) setOffset(d.serverTime);
    setLive("on");
    tick();
  });
  es.addEventListener("session", (e) => {
    const d = parse(e);
    if (!d || !d.session || S.target !== tg) return;
    const isNew = !S.sessions.has(d.session.id);
    S.sessions.set(d.session.id, d.session);
    if (!S.selected) S.selected = d.session.id;
    renderList();
    if (d.session.id === S.selected) renderDetails();
    if (isNew) renderHeader();
  });
  es.addEventListener("event", (e) => {
    const d = parse(e);
    if (!d || !d.event || S.target !== tg) return;
    const list = S.events.get(d.sessionId);
    if (list && !list.some((x) => x.id === d.event.id)) list.push(d.event);
    if (d.sessionId === S.selected) renderDetails();
    if (d.event.segmentAssignmentEvent) renderHeader();
  });
  es.addEventListener("scores", (e) => {
    const d = parse(e);
    if (!d || S.target !== tg) return;
    S.scores.set(d.sessionId, d.scores);
    if (d.sessionId === S.selected) renderDetails();
  });
  es.addEventListener("resync", () => {
    if (S.target === tg) {
      S.events = new Map();
      S.scores = new Map();
      loadSnapshot();
    }
  });
  es.onopen = () => setLive("on");
  es.onerror = () => {
    // EventSource reconnects by itself (sending Last-Event-ID); a closed one means we were refused.
    setLive("reconnecting");
    if (es.readyState === EventSource.CLOSED) {
      setTimeout(async () => {
        if (S.es !== es) return;
        if (!(await syncClock())) return showSignIn(t("signin.expired"));
        connectLive();
      }, 3000);
    }
  };
}

/// Once a second: status dots and durations follow the (server-corrected) clock.
function tick() {
  for (const c of document.querySelectorAll(".card[data-session-id]")) {
    const s = S.sessions.get(c.dataset.sessionId);
    if (!s) continue;
    const st = statusOf(s);
    const cur = c.querySelector(".status");
    if (cur && cur.dataset.status !== st) cur.replaceWith(dot(s));
    const du = c.querySelector(".duration");
    if (du) du.textContent = fmtDuration(sessionDuration(s));
    const w = c.querySelector(".when");
    if (w) w.textContent = fmtRelative(s.lastActivityDate || s.createdDate);
  }
  const ds = document.querySelector("#details-title .status");
  const sel = S.sessions.get(S.selected);
  if (ds && sel && ds.dataset.status !== statusOf(sel)) ds.replaceWith(dot(sel));
}

// ---------- layout, language, start ----------

function setLayout(l, remember) {
  if (!LAYOUTS.includes(l)) l = "100";
  for (const x of LAYOUTS) document.body.classList.toggle(`layout-${x}`, x === l);
  for (const b of document.querySelectorAll("#layouts button")) {
    b.setAttribute("aria-pressed", b.dataset.layout === l ? "true" : "false");
    b.title = t("layout.label", { pct: b.dataset.layout });
  }
  if (remember) localStorage.setItem("waymark.layout", l);
}

async function start() {
  if (!(await syncClock())) return showSignIn();
  document.getElementById("user").textContent = S.me.userName;
  document.getElementById("signout").hidden = false;
  await route();
}

async function boot() {
  await setLanguage(initialLanguage(), false);
  setLayout(localStorage.getItem("waymark.layout") || "100", false);
  for (const b of document.querySelectorAll("#layouts button")) b.addEventListener("click", () => setLayout(b.dataset.layout, true));
  document.getElementById("lang").addEventListener("change", async (e) => {
    await setLanguage(e.target.value, true);
    setLayout(document.body.className.match(/layout-(\d+)/)?.[1] || "100", false);
    setLive(S.live);
    if (!S.me) return showSignIn();
    // Redraw in place: the loaded journey and the live stream stay as they are.
    if (S.target && document.getElementById("view")) {
      const open = document.body.classList.contains("detail-open");
      renderView();
      if (open) document.body.classList.add("detail-open");
    } else route().catch(onError);
  });
  document.getElementById("signout").addEventListener("click", async () => {
    await api("/api/v2/logout", { method: "POST", allow401: true });
    history.pushState(null, "", "/agent");
    showSignIn();
  });
  document.getElementById("home").addEventListener("click", navigate);
  window.addEventListener("popstate", () => route().catch(onError));
  setInterval(tick, 1000);
  setInterval(() => {
    if (S.me) syncClock().catch(() => {});
  }, CLOCK_SYNC_MS);
  // Lets an embedding desktop (or a test that moved the server's clock) ask for a clock sync now.
  window.addEventListener("message", (e) => {
    if (e.origin === location.origin && e.data === "waymark:sync-clock") syncClock().then(tick);
  });
  await start();
}

function onError(e) {
  if (e instanceof SignedOut) return showSignIn(t("signin.expired"));
  console.error(e);
  screen(h("p", { class: "error", role: "alert" }, t("error.generic", { code: e.message || "?" })));
}

boot().catch(onError);
