//! Device category (desktop / mobile / tablet / bot / other): Waymark's own rules on top of a User-Agent parse.
//!
//! uap-core has no device *type*, and woothee's types are coarser (an iPad is a "smartphone"), so both parsers
//! describe the device in uap-core terms (OS family, device family, brand) and [`device_category`] decides,
//! first rule that applies wins:
//!
//! 1. **Bot**: device family `Spider` (uap-core's name for crawlers; the built-in rules use it too).
//! 2. **Tablet**: device family `iPad…`; brand `Generic_Android_Tablet`; a device family containing `Tablet` or
//!    `Kindle` (any case); or OS `Android` when the User-Agent lacks the `Mobile` token (Google's rule for
//!    Android tablets).
//! 3. **Mobile**: device family `iPhone…` or `iPod…`; or any device on a phone OS ([`MOBILE_OS`]: iOS,
//!    Android, Windows Phone, BlackBerry OS, KaiOS, Firefox OS).
//! 4. **Desktop**: no device (`Other`) or a `Mac`, on a desktop OS ([`DESKTOP_OS`]: Windows, Mac OS X, Linux,
//!    Chrome OS, Ubuntu and the other common Linux/BSD distributions).
//! 5. **Other**: everything else (consoles, TVs, HTTP libraries such as curl, unknown strings).
//!
//! The tracking script may also report a category. [`refine_with_hint`] lets it settle only what the
//! User-Agent cannot: see its documentation.

use waymark_domain::wire::DeviceCategory;

/// OS families (uap-core spelling) whose devices are phones unless a tablet rule matched first.
pub const MOBILE_OS: &[&str] = &["iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS", "Firefox OS"];

/// OS families (uap-core spelling) of desktop and laptop computers.
pub const DESKTOP_OS: &[&str] = &[
    "Windows",
    "Mac OS X",
    "Linux",
    "Chrome OS",
    "Ubuntu",
    "Debian",
    "Fedora",
    "Red Hat",
    "openSUSE",
    "Linux Mint",
    "Gentoo",
    "Arch Linux",
    "FreeBSD",
    "OpenBSD",
    "NetBSD",
    "Solaris",
];

/// What a User-Agent parse says about the device; the input of [`device_category`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceFacts<'a> {
    /// The raw User-Agent (for the `Mobile` token).
    pub user_agent: &'a str,
    /// uap-core OS family, `Other` when unknown.
    pub os_family: &'a str,
    /// uap-core device family, `Other` when unknown.
    pub device_family: &'a str,
    /// uap-core device brand, if any.
    pub device_brand: Option<&'a str>,
}

/// The category of a device by the rules in the module documentation.
pub fn device_category(facts: &DeviceFacts<'_>) -> DeviceCategory {
    let family = facts.device_family;
    let os = facts.os_family;
    let no_device = family.is_empty() || family == "Other";

    if family == "Spider" {
        return DeviceCategory::Bot;
    }
    if family.starts_with("iPad")
        || facts.device_brand == Some("Generic_Android_Tablet")
        || contains_ignore_ascii_case(family, "tablet")
        || contains_ignore_ascii_case(family, "kindle")
        || (os == "Android" && !facts.user_agent.contains("Mobile"))
    {
        return DeviceCategory::Tablet;
    }
    if family.starts_with("iPhone") || family.starts_with("iPod") || MOBILE_OS.contains(&os) {
        return DeviceCategory::Mobile;
    }
    if (no_device || family == "Mac") && DESKTOP_OS.contains(&os) {
        return DeviceCategory::Desktop;
    }
    DeviceCategory::Other
}

/// A category reported by the client (`device.category`): `desktop`, `mobile`, `tablet` or `other`, any
/// case. Anything else (including `bot`: a client cannot declare itself a crawler) is ignored.
pub fn category_from_hint(hint: &str) -> Option<DeviceCategory> {
    match hint.trim().to_ascii_lowercase().as_str() {
        "desktop" => Some(DeviceCategory::Desktop),
        "mobile" => Some(DeviceCategory::Mobile),
        "tablet" => Some(DeviceCategory::Tablet),
        "other" => Some(DeviceCategory::Other),
        _ => None,
    }
}

/// The final category from the User-Agent's and the client's (if it sent one).
///
/// - The User-Agent decides whenever it is specific: **bot**, **mobile** and **tablet** are never changed.
/// - **Other** (no or unknown User-Agent) takes the client's category.
/// - **Desktop** is ambiguous: iPadOS Safari and Android browsers in "desktop site" mode send a desktop
///   User-Agent. The client may turn it into **tablet** or **mobile** (the script sees a touch screen), never
///   into other.
pub fn refine_with_hint(from_user_agent: DeviceCategory, hint: Option<DeviceCategory>) -> DeviceCategory {
    match (from_user_agent, hint) {
        (DeviceCategory::Other, Some(h)) => h,
        (DeviceCategory::Desktop, Some(h @ (DeviceCategory::Tablet | DeviceCategory::Mobile))) => h,
        (c, _) => c,
    }
}

fn contains_ignore_ascii_case(haystack: &str, needle: &str) -> bool {
    haystack.as_bytes().windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeviceCategory::*;

    fn category(user_agent: &str, os_family: &str, device_family: &str, device_brand: Option<&str>) -> DeviceCategory {
        device_category(&DeviceFacts { user_agent, os_family, device_family, device_brand })
    }

    /// Every row of the table in `shared/testdata/uap-core/README.md`, with the parse uap-core gives.
    #[test]
    fn uap_core_readme_rows() {
        let rows: &[(&str, &str, &str, Option<&str>, DeviceCategory)] = &[
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0.0.0 Safari/537.36",
                "Windows",
                "Other",
                None,
                Desktop,
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51",
                "Windows",
                "Other",
                None,
                Desktop,
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Version/17.4 Safari/605.1.15",
                "Mac OS X",
                "Mac",
                Some("Apple"),
                Desktop,
            ),
            ("Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0", "Linux", "Other", None, Desktop),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile/15E148 Safari/604.1",
                "iOS",
                "iPhone",
                Some("Apple"),
                Mobile,
            ),
            (
                "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) Mobile/15E148 Safari/604.1",
                "iOS",
                "iPad",
                Some("Apple"),
                Tablet,
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; SM-S911B) Chrome/124.0.0.0 Mobile Safari/537.36",
                "Android",
                "Samsung SM-S911B",
                Some("Samsung"),
                Mobile,
            ),
            (
                "Mozilla/5.0 (Linux; Android 13; SM-X700) Chrome/124.0.0.0 Safari/537.36",
                "Android",
                "SM-X700",
                Some("Generic_Android_Tablet"),
                Tablet,
            ),
            (
                "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
                "Other",
                "Spider",
                Some("Spider"),
                Bot,
            ),
            ("curl/8.5.0", "Other", "Other", None, Other),
        ];
        for (ua, os, family, brand, want) in rows {
            assert_eq!(category(ua, os, family, *brand), *want, "{ua}");
        }
    }

    #[test]
    fn each_rule_on_its_own() {
        // Tablet by family name, whatever the OS says.
        assert_eq!(category("x", "Android", "Kindle Fire", Some("Amazon")), Tablet);
        assert_eq!(category("x Mobile", "Other", "Generic Tablet", None), Tablet);
        // Android without the Mobile token, even when uap-core named a brand.
        assert_eq!(category("(Linux; Android 13; SM-X700)", "Android", "Samsung SM-X700", Some("Samsung")), Tablet);
        // Android phone with a brand, and Android with the Mobile token but no device.
        assert_eq!(category("Android 14; Pixel 8) Mobile", "Android", "Pixel 8", Some("Google")), Mobile);
        assert_eq!(category("Android Mobile", "Android", "Other", None), Mobile);
        assert_eq!(category("x", "Windows Phone", "Lumia 950", Some("Microsoft")), Mobile);
        assert_eq!(category("x", "Other", "iPod", Some("Apple")), Mobile);
        // A desktop OS with a named, non-Mac device is not assumed to be a desktop.
        assert_eq!(category("x", "Linux", "Samsung SmartTV", Some("Samsung")), Other);
        assert_eq!(category("x", "Chrome OS", "Other", None), Desktop);
        assert_eq!(category("x", "Ubuntu", "Other", None), Desktop);
        assert_eq!(category("", "Other", "Other", None), Other);
        assert_eq!(category("", "", "", None), Other);
    }

    #[test]
    fn hints_only_settle_what_the_user_agent_cannot() {
        assert_eq!(refine_with_hint(Other, Some(Tablet)), Tablet);
        assert_eq!(refine_with_hint(Other, Some(Desktop)), Desktop);
        assert_eq!(refine_with_hint(Other, None), Other);
        assert_eq!(refine_with_hint(Desktop, Some(Tablet)), Tablet);
        assert_eq!(refine_with_hint(Desktop, Some(Mobile)), Mobile);
        assert_eq!(refine_with_hint(Desktop, Some(Other)), Desktop);
        assert_eq!(refine_with_hint(Mobile, Some(Desktop)), Mobile);
        assert_eq!(refine_with_hint(Tablet, Some(Mobile)), Tablet);
        assert_eq!(refine_with_hint(Bot, Some(Desktop)), Bot);
    }

    #[test]
    fn client_categories() {
        assert_eq!(category_from_hint(" Tablet "), Some(Tablet));
        assert_eq!(category_from_hint("DESKTOP"), Some(Desktop));
        assert_eq!(category_from_hint("other"), Some(Other));
        assert_eq!(category_from_hint("bot"), None);
        assert_eq!(category_from_hint(""), None);
    }
}
