//! The one error type of this crate: configuration that cannot be used, each message saying how to fix it.
//!
//! Only start-up work fails (opening a database, loading rules, reading the proxy list). Enriching an event
//! never fails: missing or broken data leaves fields empty.

use std::path::PathBuf;

/// Enrichment data that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    /// The GeoIP database could not be read or is not a MaxMind DB file.
    #[error(
        "cannot open the GeoIP database {path}: {error}; configure geoip.city_db to a GeoLite2-City.mmdb \
         (or GeoLite2-Country.mmdb) file downloaded from MaxMind, or remove the setting to run without geolocation"
    )]
    GeoIpOpen { path: PathBuf, error: maxminddb::MaxMindDbError },

    /// The file is a MaxMind DB, but not one that holds locations (e.g. an ASN database).
    #[error(
        "the GeoIP database {path} is of type {database_type:?}, which holds no locations; configure \
         geoip.city_db to a GeoLite2-City.mmdb or GeoLite2-Country.mmdb file (GeoIP2 City/Country work too)"
    )]
    GeoIpNotLocation { path: PathBuf, database_type: String },

    /// The uap-core rules file could not be read.
    #[error(
        "cannot read the User-Agent rules file {path}: {error}; point the setting at uap-core's regexes.yaml \
         (https://github.com/ua-parser/uap-core, or the npm package uap-core), or remove it to use the built-in rules"
    )]
    UaRulesRead { path: PathBuf, error: std::io::Error },

    /// The uap-core rules file is not valid YAML of the expected shape.
    #[error(
        "the User-Agent rules file {path} is not a uap-core regexes.yaml: {error}; use an unmodified regexes.yaml \
         from https://github.com/ua-parser/uap-core, or remove the setting to use the built-in rules"
    )]
    UaRulesParse { path: PathBuf, error: serde_norway::Error },

    /// A rule in the uap-core file could not be compiled.
    #[error(
        "the User-Agent rules file {path} has a rule that cannot be compiled ({error}); use an unmodified \
         regexes.yaml from https://github.com/ua-parser/uap-core, or remove the setting to use the built-in rules"
    )]
    UaRulesBuild { path: PathBuf, error: String },

    /// An entry of the trusted proxy list is neither an address nor a network.
    #[error(
        "trusted proxy {value:?} is neither an IP address (10.0.0.1) nor a CIDR network (10.0.0.0/8); \
         fix the trusted proxies list"
    )]
    TrustedProxy { value: String },
}
