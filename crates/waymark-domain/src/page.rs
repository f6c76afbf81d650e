//! Taking a page URL apart: hostname, path, query, fragment, site-search terms and UTM campaign fields,
//! following the deployment's rules (search parameters, excluded parameters, fragments kept or not).

use crate::deployment::Deployment;
use crate::wire::{Campaign, Page};
use crate::{ErrorCode, Rejection};
use url::Url;

/// What one page URL yields.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedPage {
    pub page: Page,
    /// Site-search terms found in the deployment's search parameters (decoded, trimmed, non-empty).
    pub search_terms: Vec<String>,
    /// UTM campaign fields, when any is present.
    pub campaign: Option<Campaign>,
}

/// Parse an absolute http(s) URL for a page.
pub fn parse_page(raw_url: &str, title: &str, deployment: &Deployment) -> Result<ParsedPage, Rejection> {
    let mut url = parse_http_url(raw_url).map_err(|m| Rejection::at(ErrorCode::InvalidUrl, "page.url", m))?;
    let hostname = url.host_str().unwrap_or_default().to_ascii_lowercase();

    let mut search_terms = Vec::new();
    let mut campaign = Campaign::default();
    let mut kept: Vec<(String, String)> = Vec::new();
    let mut any_excluded = false;
    for (k, v) in url.query_pairs() {
        if deployment.excluded_query_params.iter().any(|e| e.eq_ignore_ascii_case(&k)) {
            any_excluded = true;
            continue;
        }
        if deployment.search_query_params.iter().any(|p| p == k.as_ref()) {
            let term = v.trim();
            if !term.is_empty() && !search_terms.iter().any(|t: &String| t == term) {
                search_terms.push(term.to_string());
            }
        }
        let value = Some(v.to_string());
        match k.as_ref() {
            "utm_source" => campaign.source = value,
            "utm_medium" => campaign.medium = value,
            "utm_campaign" => campaign.name = value,
            "utm_term" => campaign.term = value,
            "utm_content" => campaign.content = value,
            "gclid" => {
                campaign.click_id = value;
                campaign.network = Some("google".into());
            }
            "fbclid" => {
                campaign.click_id = value;
                campaign.network = Some("facebook".into());
            }
            "msclkid" => {
                campaign.click_id = value;
                campaign.network = Some("microsoft".into());
            }
            _ => {}
        }
        kept.push((k.into_owned(), v.into_owned()));
    }
    if any_excluded {
        if kept.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(kept.iter());
        }
    }
    let fragment = if deployment.keep_url_fragment {
        url.fragment().filter(|f| !f.is_empty()).map(str::to_string)
    } else {
        url.set_fragment(None);
        None
    };
    let pathname = url.path().to_string();
    let breadcrumb = pathname.split('/').filter(|s| !s.is_empty()).map(str::to_string).collect();
    let page = Page {
        url: url.to_string(),
        title: title.to_string(),
        domain: registrable_domain(&hostname),
        fragment,
        hostname,
        keywords: None,
        lang: None,
        pathname,
        query_string: url.query().filter(|q| !q.is_empty()).map(str::to_string),
        breadcrumb,
    };
    Ok(ParsedPage { page, search_terms, campaign: (!campaign.is_empty()).then_some(campaign) })
}

/// Parse an absolute http(s) URL or say why not.
pub fn parse_http_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw.trim()).map_err(|e| format!("not an absolute URL ({e}): {}", clip(raw)))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!("only http and https URLs are tracked, got {}:", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".into());
    }
    Ok(url)
}

/// The domain a hostname belongs to, approximated as its last two labels (three for well-known second-level
/// public suffixes such as `co.uk`). Used for display and grouping only, never for security decisions.
pub fn registrable_domain(host: &str) -> String {
    if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
        return host.to_string();
    }
    let labels: Vec<&str> = host.split('.').filter(|l| !l.is_empty()).collect();
    if labels.len() <= 2 {
        return labels.join(".");
    }
    let n = labels.len();
    let second = labels[n - 2];
    let take = if matches!(second, "co" | "com" | "org" | "net" | "ac" | "gov" | "edu" | "ne" | "or" | "go")
        && labels[n - 1].len() == 2
    {
        3
    } else {
        2
    };
    labels[n - take..].join(".")
}

fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{DeploymentId, OrgId};

    fn dep() -> Deployment {
        Deployment::new(OrgId(uuid::Uuid::nil()), DeploymentId(uuid::Uuid::nil()), "t")
    }

    #[test]
    fn takes_the_url_apart() {
        let p = parse_page(
            "https://Shop.Example.co.uk/cart/items?q=%20red+shoes%20&utm_source=News&utm_campaign=Spring#top",
            "Cart",
            &dep(),
        )
        .unwrap();
        assert_eq!(p.page.hostname, "shop.example.co.uk");
        assert_eq!(p.page.domain, "example.co.uk");
        assert_eq!(p.page.pathname, "/cart/items");
        assert_eq!(p.page.breadcrumb, vec!["cart", "items"]);
        assert_eq!(p.page.fragment, None);
        assert!(!p.page.url.contains('#'));
        assert_eq!(p.search_terms, vec!["red shoes"]);
        let c = p.campaign.unwrap();
        assert_eq!(c.source.as_deref(), Some("News"));
        assert_eq!(c.name.as_deref(), Some("Spring"));
    }

    #[test]
    fn excluded_params_and_fragments_follow_the_deployment() {
        let mut d = dep();
        d.excluded_query_params = vec!["token".into()];
        d.keep_url_fragment = true;
        let p = parse_page("https://a.example/x?token=secret&page=2#/route", "", &d).unwrap();
        assert!(!p.page.url.contains("secret"));
        assert_eq!(p.page.query_string.as_deref(), Some("page=2"));
        assert_eq!(p.page.fragment.as_deref(), Some("/route"));
    }

    #[test]
    fn rejects_non_http_urls() {
        for bad in ["javascript:alert(1)", "/relative", "", "ftp://x.example/", "http://"] {
            assert!(parse_page(bad, "", &dep()).is_err(), "{bad}");
        }
    }
}
