//! User-Agent parsing: browser, OS and device, in uap-core's vocabulary, whichever rules are in use.
//!
//! Two rule sets:
//! - **Built-in** ([`UserAgentParser::builtin`], the default): woothee's compiled-in rules, no data file. Its
//!   answers are translated to uap-core names (`Mobile Safari`, `Chrome Mobile`, `Mac OS X`, device `iPad`, …)
//!   so that segments written against one rule set keep working with the other. It knows no device models
//!   beyond Apple's and the model token of an Android User-Agent, and no brands besides Apple.
//! - **uap-core** ([`UserAgentParser::from_regexes_file`]): the ua-parser project's `regexes.yaml`, loaded
//!   at run time and compiled once (≈0.1 s). Passes the uap-core conformance suite.
//!
//! Unknown families are `"Other"` (the uap-core convention); unknown versions are empty strings. Versions are
//! `major[.minor[.patch]]`. The device category comes from [`crate::device::device_category`].

use crate::EnrichError;
use crate::device::{DeviceFacts, device_category};
use std::path::Path;
use waymark_domain::wire::DeviceCategory;

/// The uap-core word for "not recognised".
pub const OTHER: &str = "Other";

/// What a User-Agent says about the visitor's software and device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedUserAgent {
    /// e.g. `Chrome`, `Mobile Safari`, `Googlebot`; `Other` when unknown.
    pub browser_family: String,
    /// `major[.minor[.patch]]`, empty when unknown.
    pub browser_version: String,
    /// e.g. `Windows`, `Mac OS X`, `iOS`, `Android`; `Other` when unknown.
    pub os_family: String,
    /// `major[.minor[.patch]]`, empty when unknown.
    pub os_version: String,
    /// e.g. `iPhone`, `iPad`, `Mac`, `Samsung SM-S911B`, `Spider` (crawlers); `Other` when unknown.
    pub device_family: String,
    /// e.g. `Apple`, `Samsung`.
    pub device_brand: Option<String>,
    /// e.g. `iPhone`, `SM-S911B`.
    pub device_model: Option<String>,
    pub category: DeviceCategory,
}

impl ParsedUserAgent {
    /// The parse of an absent or unrecognisable User-Agent.
    pub fn unknown() -> Self {
        ParsedUserAgent {
            browser_family: OTHER.to_owned(),
            browser_version: String::new(),
            os_family: OTHER.to_owned(),
            os_version: String::new(),
            device_family: OTHER.to_owned(),
            device_brand: None,
            device_model: None,
            category: DeviceCategory::Other,
        }
    }
}

/// A User-Agent parser: built-in rules or uap-core rules. Build once and share; parsing takes `&self`.
pub struct UserAgentParser {
    rules: Rules,
}

enum Rules {
    Builtin(woothee::parser::Parser),
    // Boxed: the compiled extractor is large and built once.
    UapCore(Box<ua_parser::Extractor<'static>>),
}

impl std::fmt::Debug for UserAgentParser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserAgentParser").field("rules", &self.rules_name()).finish()
    }
}

impl Default for UserAgentParser {
    fn default() -> Self {
        UserAgentParser::builtin()
    }
}

impl UserAgentParser {
    /// The built-in rules: no setup, no data file.
    pub fn builtin() -> Self {
        UserAgentParser { rules: Rules::Builtin(woothee::parser::Parser::new()) }
    }

    /// uap-core rules from a `regexes.yaml` file (compiled here, once).
    pub fn from_regexes_file(path: impl AsRef<Path>) -> Result<Self, EnrichError> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|error| EnrichError::UaRulesRead { path: path.to_owned(), error })?;
        Self::from_regexes_yaml(&text).map_err(|e| match e {
            RulesError::Parse(error) => EnrichError::UaRulesParse { path: path.to_owned(), error },
            RulesError::Build(error) => EnrichError::UaRulesBuild { path: path.to_owned(), error },
        })
    }

    fn from_regexes_yaml(yaml: &str) -> Result<Self, RulesError> {
        let regexes: ua_parser::Regexes<'static> = serde_norway::from_str(yaml).map_err(RulesError::Parse)?;
        let extractor = ua_parser::Extractor::try_from(regexes).map_err(|e| RulesError::Build(e.to_string()))?;
        Ok(UserAgentParser { rules: Rules::UapCore(Box::new(extractor)) })
    }

    /// `builtin` or `uap-core`, for the start-up log.
    pub fn rules_name(&self) -> &'static str {
        match self.rules {
            Rules::Builtin(_) => "builtin",
            Rules::UapCore(_) => "uap-core",
        }
    }

    /// Parse a User-Agent. Never fails: what is not recognised is `Other`.
    pub fn parse(&self, user_agent: &str) -> ParsedUserAgent {
        let mut parsed = match &self.rules {
            Rules::Builtin(parser) => parse_builtin(parser, user_agent),
            Rules::UapCore(extractor) => parse_uap_core(extractor, user_agent),
        };
        parsed.category = device_category(&DeviceFacts {
            user_agent,
            os_family: &parsed.os_family,
            device_family: &parsed.device_family,
            device_brand: parsed.device_brand.as_deref(),
        });
        parsed
    }

    /// The compiled uap-core rules, for the conformance tests.
    #[cfg(test)]
    fn uap_core(&self) -> Option<&ua_parser::Extractor<'static>> {
        match &self.rules {
            Rules::UapCore(e) => Some(e),
            Rules::Builtin(_) => None,
        }
    }
}

enum RulesError {
    Parse(serde_norway::Error),
    Build(String),
}

fn family_or_other(family: &str) -> String {
    if family.trim().is_empty() { OTHER.to_owned() } else { family.to_owned() }
}

/// `major[.minor[.patch]]` from the leading present, non-empty parts.
fn join_version<'a>(parts: impl IntoIterator<Item = Option<&'a str>>) -> String {
    let mut out = String::new();
    for part in parts.into_iter().take(3) {
        match part {
            Some(p) if !p.is_empty() => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(p);
            }
            _ => break,
        }
    }
    out
}

fn parse_uap_core(extractor: &ua_parser::Extractor<'static>, user_agent: &str) -> ParsedUserAgent {
    let (browser, os, device) = extractor.extract(user_agent);
    let mut parsed = ParsedUserAgent::unknown();
    if let Some(b) = browser {
        parsed.browser_family = family_or_other(&b.family);
        parsed.browser_version = join_version([b.major, b.minor, b.patch]);
    }
    if let Some(o) = os {
        parsed.os_family = family_or_other(&o.os);
        parsed.os_version = join_version([o.major.as_deref(), o.minor.as_deref(), o.patch.as_deref()]);
    }
    if let Some(d) = device {
        parsed.device_family = family_or_other(&d.device);
        parsed.device_brand = d.brand.map(|b| b.into_owned()).filter(|b| !b.is_empty());
        parsed.device_model = d.model.map(|m| m.into_owned()).filter(|m| !m.is_empty());
    }
    parsed
}

/// woothee's answer translated to uap-core names, plus crawler marks woothee does not know.
fn parse_builtin(parser: &woothee::parser::Parser, user_agent: &str) -> ParsedUserAgent {
    let mut parsed = match parser.parse(user_agent) {
        Some(w) => from_woothee(&w, user_agent),
        None => ParsedUserAgent::unknown(),
    };
    if parsed.device_family != "Spider" && looks_like_a_bot(user_agent) {
        parsed.device_family = "Spider".to_owned();
        parsed.device_brand = Some("Spider".to_owned());
        parsed.device_model = Some("Desktop".to_owned());
    }
    parsed
}

fn from_woothee(w: &woothee::parser::WootheeResult<'_>, user_agent: &str) -> ParsedUserAgent {
    let mut parsed = ParsedUserAgent::unknown();
    let known = |s: &str| !s.is_empty() && s != woothee::woothee::VALUE_UNKNOWN;

    if w.category == "crawler" {
        parsed.browser_family = if known(w.name) { w.name.to_owned() } else { OTHER.to_owned() };
        parsed.browser_version = if known(w.version) {
            version_prefix(w.version)
        } else {
            // woothee has no crawler versions; `Googlebot/2.1` has one.
            version_after(user_agent, w.name).map(version_prefix).unwrap_or_default()
        };
        // uap-core's crawler device.
        parsed.device_family = "Spider".to_owned();
        parsed.device_brand = Some("Spider".to_owned());
        parsed.device_model = Some("Desktop".to_owned());
        return parsed;
    }

    let (os_family, os_version, apple_device) = builtin_os(w.os, &w.os_version, user_agent);
    parsed.os_family = os_family;
    parsed.os_version = os_version;

    if known(w.name) {
        parsed.browser_family = builtin_browser_family(w.name, &parsed.os_family, user_agent);
        if known(w.version) {
            parsed.browser_version = version_prefix(w.version);
        }
    }

    if let Some(device) = apple_device {
        parsed.device_family = device.to_owned();
        parsed.device_brand = Some("Apple".to_owned());
        parsed.device_model = Some(device.to_owned());
    } else if parsed.os_family == "Android" {
        if let Some(model) = android_model(user_agent) {
            parsed.device_family = model.to_owned();
            parsed.device_model = Some(model.to_owned());
        }
    } else if w.category == "mobilephone" && known(w.os) {
        // Feature phones: woothee names the carrier or platform; keep it as the device.
        parsed.device_family = w.os.to_owned();
    } else if w.category == "appliance" && known(w.os) {
        // Consoles and TVs: woothee's "OS" is the device (e.g. "PlayStation 4").
        parsed.device_family = w.os.to_owned();
        parsed.os_family = OTHER.to_owned();
    }
    if w.category == "mobilephone" && parsed.os_family == OTHER {
        // So that `device_category` calls it mobile.
        parsed.os_family = match w.os {
            "SymbianOS" => "Symbian OS".to_owned(),
            _ => OTHER.to_owned(),
        };
    }
    parsed
}

/// OS family and version in uap-core terms, and the Apple device the OS name implies.
fn builtin_os(os: &str, os_version: &str, user_agent: &str) -> (String, String, Option<&'static str>) {
    let version = || {
        if os_version == woothee::woothee::VALUE_UNKNOWN { String::new() } else { version_prefix(os_version) }
    };
    match os {
        "iPhone" => ("iOS".to_owned(), version(), Some("iPhone")),
        "iPad" => ("iOS".to_owned(), version(), Some("iPad")),
        "iPod" => ("iOS".to_owned(), version(), Some("iPod")),
        "iOS" => ("iOS".to_owned(), version(), None),
        "Mac OSX" => ("Mac OS X".to_owned(), version(), Some("Mac")),
        "Android" => ("Android".to_owned(), version(), None),
        "ChromeOS" => ("Chrome OS".to_owned(), version(), None),
        "Linux" => {
            let family = if user_agent.contains("Ubuntu") { "Ubuntu" } else { "Linux" };
            (family.to_owned(), String::new(), None)
        }
        "Windows Phone OS" => ("Windows Phone".to_owned(), version(), None),
        "BlackBerry" | "BlackBerry 10" => ("BlackBerry OS".to_owned(), version(), None),
        "Firefox OS" => ("Firefox OS".to_owned(), version(), None),
        "BSD" => ("FreeBSD".to_owned(), String::new(), None),
        // "Windows 10", "Windows 8.1", "Windows XP", …: uap-core says family Windows, version 10 / 8.1 / XP.
        windows if windows.starts_with("Windows ") => {
            let v = windows.trim_start_matches("Windows ");
            let v = if v == "UNKNOWN Ver" { "" } else { v };
            ("Windows".to_owned(), v.to_owned(), None)
        }
        _ => (OTHER.to_owned(), String::new(), None),
    }
}

/// woothee browser names in uap-core spelling (which tells the mobile variants apart).
fn builtin_browser_family(name: &str, os_family: &str, user_agent: &str) -> String {
    let ios = os_family == "iOS";
    let android = os_family == "Android";
    let mobile = user_agent.contains("Mobile");
    let family = match name {
        "Internet Explorer" => "IE",
        "Edge" if android => "Edge Mobile",
        "Chrome" if ios => "Chrome Mobile iOS",
        "Chrome" if android && user_agent.contains("; wv)") => "Chrome Mobile WebView",
        "Chrome" if android && mobile => "Chrome Mobile",
        "Safari" if ios => "Mobile Safari",
        "Webview" if ios => "Mobile Safari UI/WKWebView",
        "Webview" if android => "Chrome Mobile WebView",
        "Firefox" if ios => "Firefox iOS",
        "Firefox" if android && mobile => "Firefox Mobile",
        "Opera" if android && mobile => "Opera Mobile",
        "SamsungBrowser" => "Samsung Internet",
        "Google Search App" => "Google",
        other => other,
    };
    family.to_owned()
}

/// The first three dot-separated parts of a version (`124.0.0.0` → `124.0.0`; `17_4` → `17.4`).
fn version_prefix(version: &str) -> String {
    let normalized = version.replace('_', ".");
    join_version(normalized.split('.').map(Some))
}

/// Crawler marks woothee does not know, in any case: a contact URL (`+http`), `…bot/1.0`, `bot.html`,
/// `spider`, `crawler`, `Slurp`.
fn looks_like_a_bot(user_agent: &str) -> bool {
    const MARKS: [&str; 8] = ["+http", "bot/", "bots/", "bot.html", "spider", "crawler", "crawling", "slurp"];
    let lower = user_agent.to_ascii_lowercase();
    MARKS.iter().any(|mark| lower.contains(mark))
}

/// The version following `product/` in a User-Agent (`Googlebot/2.1;` → `2.1`).
fn version_after<'a>(user_agent: &'a str, product: &str) -> Option<&'a str> {
    if product.is_empty() {
        return None;
    }
    let start = user_agent.find(product)? + product.len();
    let rest = user_agent.get(start..)?.strip_prefix('/')?;
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    rest.get(..end).filter(|v| v.starts_with(|c: char| c.is_ascii_digit()))
}

/// The model token of an Android User-Agent: `(Linux; Android 14; SM-S911B Build/…)` → `SM-S911B`.
/// Placeholders (`K` of Chrome's reduced User-Agent, `wv`, `U`, language tags) are not models.
fn android_model(user_agent: &str) -> Option<&str> {
    let start = user_agent.find('(')?;
    let rest = user_agent.get(start + 1..)?;
    let inside = rest.split(')').next()?;
    let mut parts = inside.split(';').map(str::trim);
    parts.find(|p| p.starts_with("Android"))?;
    parts.map(|p| p.split(" Build/").next().unwrap_or(p).trim()).find(|p| !is_android_placeholder(p))
}

fn is_android_placeholder(token: &str) -> bool {
    let bytes = token.as_bytes();
    let language_tag = matches!(bytes, [a, b, b'-' | b'_', c, d] if [a, b, c, d].iter().all(|x| x.is_ascii_alphabetic()))
        || matches!(bytes, [a, b] if a.is_ascii_lowercase() && b.is_ascii_lowercase());
    token.is_empty() || token == "K" || token == "U" || token == "wv" || language_tag
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared_test_data::testdata_file;
    use DeviceCategory::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;
    use std::time::Instant;

    /// The uap-core rules from the shared test data, compiled once for all tests.
    fn uap_core() -> &'static UserAgentParser {
        static PARSER: OnceLock<UserAgentParser> = OnceLock::new();
        PARSER.get_or_init(|| {
            let path = testdata_file("uap-core/regexes.yaml");
            let started = Instant::now();
            let parser = UserAgentParser::from_regexes_file(&path).unwrap_or_else(|e| panic!("{e}"));
            eprintln!("uap-core rules compiled in {:?}", started.elapsed());
            parser
        })
    }

    struct Row {
        ua: &'static str,
        browser: (&'static str, &'static str),
        os: (&'static str, &'static str),
        device: (&'static str, Option<&'static str>, Option<&'static str>),
        category: DeviceCategory,
    }

    /// The table of `shared/testdata/uap-core/README.md`, with full User-Agents and uap-core's full answers.
    fn readme_rows() -> Vec<Row> {
        vec![
            Row {
                ua: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
                browser: ("Chrome", "124.0.0"),
                os: ("Windows", "10"),
                device: ("Other", None, None),
                category: Desktop,
            },
            Row {
                ua: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51",
                browser: ("Edge", "124.0.2478"),
                os: ("Windows", "10"),
                device: ("Other", None, None),
                category: Desktop,
            },
            Row {
                ua: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
                browser: ("Safari", "17.4"),
                os: ("Mac OS X", "10.15.7"),
                device: ("Mac", Some("Apple"), Some("Mac")),
                category: Desktop,
            },
            Row {
                ua: "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
                browser: ("Firefox", "125.0"),
                os: ("Linux", ""),
                device: ("Other", None, None),
                category: Desktop,
            },
            Row {
                ua: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
                browser: ("Mobile Safari", "17.4"),
                os: ("iOS", "17.4"),
                device: ("iPhone", Some("Apple"), Some("iPhone")),
                category: Mobile,
            },
            Row {
                ua: "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
                browser: ("Mobile Safari", "17.4"),
                os: ("iOS", "17.4"),
                device: ("iPad", Some("Apple"), Some("iPad")),
                category: Tablet,
            },
            Row {
                ua: "Mozilla/5.0 (Linux; Android 14; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
                browser: ("Chrome Mobile", "124.0.0"),
                os: ("Android", "14"),
                device: ("Samsung SM-S911B", Some("Samsung"), Some("SM-S911B")),
                category: Mobile,
            },
            Row {
                ua: "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
                browser: ("Chrome", "124.0.0"),
                os: ("Android", "13"),
                device: ("SM-X700", Some("Generic_Android_Tablet"), Some("SM-X700")),
                category: Tablet,
            },
            Row {
                ua: "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
                browser: ("Googlebot", "2.1"),
                os: ("Other", ""),
                device: ("Spider", Some("Spider"), Some("Desktop")),
                category: Bot,
            },
            Row {
                ua: "curl/8.5.0",
                browser: ("curl", "8.5.0"),
                os: ("Other", ""),
                device: ("Other", None, None),
                category: Other,
            },
        ]
    }

    #[test]
    fn uap_core_rules_on_the_readme_table() {
        let parser = uap_core();
        assert_eq!(parser.rules_name(), "uap-core");
        for row in readme_rows() {
            let p = parser.parse(row.ua);
            assert_eq!((p.browser_family.as_str(), p.browser_version.as_str()), row.browser, "{}", row.ua);
            assert_eq!((p.os_family.as_str(), p.os_version.as_str()), row.os, "{}", row.ua);
            assert_eq!(
                (p.device_family.as_str(), p.device_brand.as_deref(), p.device_model.as_deref()),
                row.device,
                "{}",
                row.ua
            );
            assert_eq!(p.category, row.category, "{}", row.ua);
        }
    }

    /// The built-in rules agree with uap-core on browser family and major version, OS family and category.
    #[test]
    fn builtin_rules_on_the_readme_table() {
        let parser = UserAgentParser::builtin();
        assert_eq!(parser.rules_name(), "builtin");
        for row in readme_rows() {
            let p = parser.parse(row.ua);
            if row.browser.0 == "curl" {
                // woothee files HTTP libraries under one name; the category is what matters.
                assert_eq!(p.category, Other, "{}", row.ua);
                continue;
            }
            let major = |v: &str| v.split('.').next().unwrap_or("").to_owned();
            assert_eq!(
                (p.browser_family.as_str(), major(&p.browser_version)),
                (row.browser.0, major(row.browser.1)),
                "{}",
                row.ua
            );
            assert_eq!(p.os_family, row.os.0, "{}", row.ua);
            assert_eq!(p.category, row.category, "{}", row.ua);
        }
    }

    #[test]
    fn builtin_rules_details() {
        let parser = UserAgentParser::builtin();
        let mac = parser.parse(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
        );
        assert_eq!((mac.device_family.as_str(), mac.device_brand.as_deref()), ("Mac", Some("Apple")));
        let samsung = parser.parse(
            "Mozilla/5.0 (Linux; Android 14; SM-S911B Build/UP1A.231005.007) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
        );
        assert_eq!((samsung.device_family.as_str(), samsung.os_version.as_str()), ("SM-S911B", "14"));
        let reduced = parser.parse(
            "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
        );
        assert_eq!((reduced.device_family.as_str(), reduced.category), ("Other", Mobile));
        let windows = parser.parse("Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko");
        assert_eq!(
            (windows.browser_family.as_str(), windows.os_family.as_str(), windows.os_version.as_str()),
            ("IE", "Windows", "7")
        );
        assert_eq!(parser.parse(""), ParsedUserAgent::unknown());
        assert_eq!(parser.parse("-"), ParsedUserAgent::unknown());
    }

    #[test]
    fn version_and_model_helpers() {
        assert_eq!(join_version([Some("1"), Some("2"), Some("3")]), "1.2.3");
        assert_eq!(join_version([Some("1"), None, Some("3")]), "1");
        assert_eq!(join_version([None, Some("2")]), "");
        assert_eq!(version_prefix("124.0.6367.60"), "124.0.6367");
        assert_eq!(version_prefix("17_4"), "17.4");
        for bot in [
            "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
            "Screaming Frog SEO Spider/19.0",
        ] {
            assert_eq!(UserAgentParser::builtin().parse(bot).category, Bot, "{bot}");
        }
        assert_eq!(
            version_after("(compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "Googlebot"),
            Some("2.1")
        );
        assert_eq!(version_after("bingbot/2.0", "bingbot"), Some("2.0"));
        assert_eq!(version_after("Googlebot", "Googlebot"), None);
        assert_eq!(version_after("Googlebot/x", "Googlebot"), None);
        assert_eq!(version_after("x", ""), None);
        assert_eq!(
            android_model("Mozilla/5.0 (Linux; U; Android 4.0.3; ko-kr; LG-L160L Build/IML74K)"),
            Some("LG-L160L")
        );
        assert_eq!(android_model("Mozilla/5.0 (Linux; Android 10; K)"), None);
        assert_eq!(android_model("(Linux; Android 12; wv)"), None);
        assert_eq!(android_model("no parenthesis"), None);
        assert_eq!(android_model("(Linux; Android"), None);
    }

    #[test]
    fn broken_rules_files_are_reported() {
        let e = UserAgentParser::from_regexes_file("/nonexistent/regexes.yaml").unwrap_err();
        assert!(matches!(e, EnrichError::UaRulesRead { .. }), "{e}");
        assert!(e.to_string().contains("uap-core"), "{e}");
        assert!(matches!(UserAgentParser::from_regexes_yaml("user_agent_parsers: 3"), Err(RulesError::Parse(_))));
        let bad_regex = "user_agent_parsers: [{regex: '(unclosed'}]\nos_parsers: []\ndevice_parsers: []\n";
        assert!(matches!(UserAgentParser::from_regexes_yaml(bad_regex), Err(RulesError::Build(_))));
    }

    // ---- uap-core conformance -----------------------------------------------------------------------------

    fn load_cases(file: &str) -> Vec<serde_norway::Mapping> {
        #[derive(serde::Deserialize)]
        struct Cases {
            test_cases: Vec<serde_norway::Mapping>,
        }
        let path = testdata_file(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let cases: Cases = serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!cases.test_cases.is_empty(), "{} has no cases", path.display());
        cases.test_cases
    }

    /// A field of a test case: `None` for an empty YAML value (`major:`).
    fn field(case: &serde_norway::Mapping, key: &str) -> Option<String> {
        match case.get(key)? {
            serde_norway::Value::String(s) => Some(s.clone()),
            serde_norway::Value::Number(n) => Some(n.to_string()),
            serde_norway::Value::Null => None,
            other => panic!("unexpected value {other:?} for {key}"),
        }
    }

    /// Run every case; returns (passed, failures) and prints the time taken.
    fn conformance(
        file: &str,
        keys: &[&str],
        step: usize,
        actual: impl Fn(&ua_parser::Extractor<'static>, &str) -> Vec<Option<String>>,
    ) -> (usize, Vec<String>) {
        let cases = load_cases(file);
        let extractor = uap_core().uap_core().expect("uap-core rules");
        let started = Instant::now();
        let mut passed = 0;
        let mut failures = Vec::new();
        for case in cases.iter().step_by(step) {
            let ua = field(case, "user_agent_string").expect("user_agent_string");
            let expected: Vec<Option<String>> = keys.iter().map(|k| field(case, k)).collect();
            let got = actual(extractor, &ua);
            if got == expected {
                passed += 1;
            } else {
                failures.push(format!("{ua:?}: expected {expected:?}, got {got:?}"));
            }
        }
        eprintln!(
            "{file}: {passed}/{} cases pass (every {step}. of {}) in {:?}",
            passed + failures.len(),
            cases.len(),
            started.elapsed()
        );
        (passed, failures)
    }

    fn other_if_none(family: Option<String>) -> Option<String> {
        Some(family.unwrap_or_else(|| OTHER.to_owned()))
    }

    #[test]
    fn uap_core_conformance_user_agents() {
        let (passed, failures) =
            conformance("uap-core/test_ua.yaml", &["family", "major", "minor", "patch"], 1, |e, ua| {
                let v = e.ua.extract(ua);
                vec![
                    other_if_none(v.as_ref().map(|v| v.family.to_string())),
                    v.as_ref().and_then(|v| v.major.map(str::to_owned)),
                    v.as_ref().and_then(|v| v.minor.map(str::to_owned)),
                    v.as_ref().and_then(|v| v.patch.map(str::to_owned)),
                ]
            });
        assert!(failures.is_empty(), "{} failures, first: {:#?}", failures.len(), &failures[..failures.len().min(5)]);
        assert!(passed >= 1601, "only {passed} cases ran");
    }

    #[test]
    fn uap_core_conformance_operating_systems() {
        let keys = ["family", "major", "minor", "patch", "patch_minor"];
        let (passed, failures) = conformance("uap-core/test_os.yaml", &keys, 1, |e, ua| {
            let v = e.os.extract(ua);
            vec![
                other_if_none(v.as_ref().map(|v| v.os.to_string())),
                v.as_ref().and_then(|v| v.major.as_deref().map(str::to_owned)),
                v.as_ref().and_then(|v| v.minor.as_deref().map(str::to_owned)),
                v.as_ref().and_then(|v| v.patch.as_deref().map(str::to_owned)),
                v.as_ref().and_then(|v| v.patch_minor.as_deref().map(str::to_owned)),
            ]
        });
        assert!(failures.is_empty(), "{} failures, first: {:#?}", failures.len(), &failures[..failures.len().min(5)]);
        assert!(passed >= 483, "only {passed} cases ran");
    }

    #[test]
    fn uap_core_conformance_devices() {
        let (passed, failures) = conformance("uap-core/test_device.yaml", &["family", "brand", "model"], 1, |e, ua| {
            let v = e.dev.extract(ua);
            vec![
                other_if_none(v.as_ref().map(|v| v.device.to_string())),
                v.as_ref().and_then(|v| v.brand.as_deref().map(str::to_owned)),
                v.as_ref().and_then(|v| v.model.as_deref().map(str::to_owned)),
            ]
        });
        assert!(failures.is_empty(), "{} failures, first: {:#?}", failures.len(), &failures[..failures.len().min(5)]);
        assert!(passed >= 16129, "only {passed} cases ran");
    }

    proptest! {
        #[test]
        fn parsing_never_panics(ua in ".{0,300}") {
            for parser in [&UserAgentParser::builtin(), uap_core()] {
                let p = parser.parse(&ua);
                prop_assert!(!p.browser_family.is_empty() && !p.os_family.is_empty() && !p.device_family.is_empty());
            }
        }

        #[test]
        fn parsing_user_agent_shaped_strings_never_panics(
            ua in "Mozilla/5\\.0 \\((Linux|iPad|iPhone|Windows NT [0-9.]{1,4}|Macintosh)[;a-zA-Z0-9 _./-]{0,40}\\)[ a-zA-Z0-9/._()-]{0,80}"
        ) {
            for parser in [&UserAgentParser::builtin(), uap_core()] {
                let p = parser.parse(&ua);
                prop_assert!(!p.browser_family.is_empty());
            }
        }
    }
}
