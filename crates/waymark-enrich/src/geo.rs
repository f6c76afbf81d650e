//! IP geolocation from a MaxMind DB file (GeoLite2/GeoIP2 City or Country, or a compatible DB-IP file).
//!
//! The operator points Waymark at their own `.mmdb` (MaxMind's databases cannot be redistributed); without one
//! [`GeoProvider::none`] answers nothing. A lookup never fails the event: addresses that cannot be public
//! (private, loopback, link-local, …) are not looked up, addresses the database does not know give `None`,
//! and a database that cannot decode a record (corrupt file) gives `None` and a warning at most once a minute.

use crate::EnrichError;
use maxminddb::geoip2;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use waymark_domain::wire::Geolocation;

/// `Geolocation.source` of answers from a database.
pub const SOURCE_MAXMIND: &str = "maxmind";

/// Seconds between two warnings about an unreadable record.
const WARN_INTERVAL_SECS: i64 = 60;

/// Geolocation by IP address: a MaxMind database, or nothing.
#[derive(Debug, Default)]
pub struct GeoProvider {
    database: Option<Database>,
}

#[derive(Debug)]
struct Database {
    reader: maxminddb::Reader<Vec<u8>>,
    path: PathBuf,
    /// Unix seconds of the last decode-error warning (rate limit).
    last_warning: AtomicI64,
}

impl GeoProvider {
    /// No database: every lookup gives `None`.
    pub fn none() -> Self {
        GeoProvider { database: None }
    }

    /// Load a MaxMind DB file (read into memory once). City and Country databases both work; a Country
    /// database gives countries only.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, EnrichError> {
        let path = path.as_ref();
        let reader = maxminddb::Reader::open_readfile(path)
            .map_err(|error| EnrichError::GeoIpOpen { path: path.to_owned(), error })?;
        let database_type = reader.metadata().database_type.clone();
        let holds_locations = ["City", "Country", "Enterprise"].iter().any(|kind| database_type.contains(kind));
        if !holds_locations {
            return Err(EnrichError::GeoIpNotLocation { path: path.to_owned(), database_type });
        }
        Ok(GeoProvider {
            database: Some(Database { reader, path: path.to_owned(), last_warning: AtomicI64::new(i64::MIN) }),
        })
    }

    /// Whether a database is loaded.
    pub fn is_enabled(&self) -> bool {
        self.database.is_some()
    }

    /// The loaded database's type (`GeoLite2-City`, …), for the start-up log.
    pub fn database_type(&self) -> Option<&str> {
        self.database.as_ref().map(|db| db.reader.metadata().database_type.as_str())
    }

    /// Where `ip` is, if the database knows. IPv4-mapped IPv6 addresses are looked up as IPv4.
    pub fn lookup(&self, ip: IpAddr) -> Option<Geolocation> {
        let database = self.database.as_ref()?;
        let ip = ip.to_canonical();
        if !may_be_public(ip) {
            return None;
        }
        let result = match database.reader.lookup(ip) {
            Ok(result) => result,
            Err(error) => {
                database.warn(&error);
                return None;
            }
        };
        if !result.has_data() {
            return None;
        }
        match result.decode::<geoip2::City>() {
            Ok(Some(city)) => Some(geolocation(&city)).filter(|g| !g.is_empty()),
            Ok(None) => None,
            Err(error) => {
                database.warn(&error);
                None
            }
        }
    }
}

impl Database {
    fn warn(&self, error: &maxminddb::MaxMindDbError) {
        let now =
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let last = self.last_warning.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= WARN_INTERVAL_SECS
            && self.last_warning.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            tracing::warn!(
                database = %self.path.display(),
                %error,
                "GeoIP database record cannot be decoded; geolocation is left empty (the file may be corrupt: \
                 download it again). This warning repeats at most once a minute."
            );
        }
    }
}

/// The Genesys geolocation of a City (or Country) record. `country` is where the address is, not the
/// `registered_country` of its network; `region` is the first (largest) subdivision.
fn geolocation(city: &geoip2::City<'_>) -> Geolocation {
    let owned = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_owned);
    let region = city.subdivisions.first();
    Geolocation {
        country: owned(city.country.iso_code),
        country_name: owned(city.country.names.english),
        latitude: city.location.latitude,
        longitude: city.location.longitude,
        locality: owned(city.city.names.english),
        postal_code: owned(city.postal.code),
        region: owned(region.and_then(|r| r.iso_code)),
        region_name: owned(region.and_then(|r| r.names.english)),
        source: Some(SOURCE_MAXMIND.to_owned()),
        timezone: owned(city.location.time_zone),
    }
}

/// False for addresses that never belong to a visitor on the internet (so are never looked up).
fn may_be_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => may_be_public_v4(v4),
        IpAddr::V6(v6) => may_be_public_v6(v6),
    }
}

fn may_be_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let shared_cgnat = a == 100 && (64..128).contains(&b);
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || shared_cgnat
        || a == 0)
}

fn may_be_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    let unique_local = (first & 0xfe00) == 0xfc00;
    let link_local = (first & 0xffc0) == 0xfe80;
    !(ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() || unique_local || link_local)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared_test_data::testdata_file;

    fn open(name: &str) -> GeoProvider {
        let path = testdata_file(&format!("geoip/{name}"));
        GeoProvider::open(&path).unwrap_or_else(|e| panic!("{e}"))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    const CITY_DBS: [&str; 2] = ["GeoIP2-City-Test.mmdb", "GeoLite2-City-Test.mmdb"];

    struct Expected {
        ip: &'static str,
        country: &'static str,
        country_name: Option<&'static str>,
        city: &'static str,
        region: &'static str,
        region_name: Option<&'static str>,
        lat_lon: (f64, f64),
        postal: Option<&'static str>,
        timezone: &'static str,
    }

    /// The city rows of `shared/testdata/geoip/README.md`.
    fn city_rows() -> Vec<Expected> {
        vec![
            Expected {
                ip: "81.2.69.160",
                country: "GB",
                country_name: Some("United Kingdom"),
                city: "London",
                region: "ENG",
                region_name: Some("England"),
                lat_lon: (51.5142, -0.0931),
                postal: None,
                timezone: "Europe/London",
            },
            Expected {
                ip: "2.125.160.217",
                country: "GB",
                country_name: Some("United Kingdom"),
                city: "Boxford",
                region: "ENG",
                region_name: Some("England"),
                lat_lon: (51.75, -1.25),
                postal: Some("OX1"),
                timezone: "Europe/London",
            },
            Expected {
                ip: "89.160.20.129",
                country: "SE",
                country_name: Some("Sweden"),
                city: "Linköping",
                region: "E",
                region_name: Some("Östergötland County"),
                lat_lon: (58.4167, 15.6167),
                postal: None,
                timezone: "Europe/Stockholm",
            },
            Expected {
                ip: "216.160.83.57",
                country: "US",
                country_name: Some("United States"),
                city: "Milton",
                region: "WA",
                region_name: Some("Washington"),
                lat_lon: (47.2513, -122.3149),
                postal: Some("98354"),
                timezone: "America/Los_Angeles",
            },
            Expected {
                ip: "175.16.199.1",
                country: "CN",
                country_name: Some("China"),
                city: "Changchun",
                region: "22",
                region_name: Some("Jilin Sheng"),
                lat_lon: (43.88, 125.3228),
                postal: None,
                timezone: "Asia/Harbin",
            },
            Expected {
                ip: "2001:480:10::1",
                country: "US",
                country_name: Some("United States"),
                city: "San Diego",
                region: "CA",
                region_name: None,
                lat_lon: (32.7203, -117.1552),
                postal: None,
                timezone: "America/Los_Angeles",
            },
        ]
    }

    #[test]
    fn city_databases_answer_the_documented_rows() {
        for db in CITY_DBS {
            let geo = open(db);
            assert!(geo.is_enabled());
            for row in city_rows() {
                let g = geo.lookup(ip(row.ip)).unwrap_or_else(|| panic!("{db}: no answer for {}", row.ip));
                let at = format!("{db} {}", row.ip);
                assert_eq!(g.country.as_deref(), Some(row.country), "{at}");
                if let Some(name) = row.country_name {
                    assert_eq!(g.country_name.as_deref(), Some(name), "{at}");
                }
                assert_eq!(g.locality.as_deref(), Some(row.city), "{at}");
                assert_eq!(g.region.as_deref(), Some(row.region), "{at}");
                if let Some(name) = row.region_name {
                    assert_eq!(g.region_name.as_deref(), Some(name), "{at}");
                }
                assert_eq!((g.latitude, g.longitude), (Some(row.lat_lon.0), Some(row.lat_lon.1)), "{at}");
                if let Some(postal) = row.postal {
                    assert_eq!(g.postal_code.as_deref(), Some(postal), "{at}");
                }
                assert_eq!(g.timezone.as_deref(), Some(row.timezone), "{at}");
                assert_eq!(g.source.as_deref(), Some(SOURCE_MAXMIND), "{at}");
            }
        }
    }

    /// `country` is where the address is; the test data gives the network a different `registered_country`.
    #[test]
    fn country_is_not_the_registered_country() {
        let geo = open("GeoIP2-City-Test.mmdb");
        let london = geo.lookup(ip("81.2.69.160")).expect("London");
        assert_eq!(london.country.as_deref(), Some("GB")); // registered_country is US
        let linkoping = geo.lookup(ip("89.160.20.129")).expect("Linköping");
        assert_eq!(linkoping.country.as_deref(), Some("SE")); // registered_country is DE
    }

    #[test]
    fn countries_without_cities() {
        for db in CITY_DBS {
            let geo = open(db);
            let bhutan = geo.lookup(ip("67.43.156.1")).expect("Bhutan");
            assert_eq!(bhutan.country.as_deref(), Some("BT"), "{db}");
            assert_eq!(bhutan.locality, None, "{db}");
            assert_eq!((bhutan.latitude, bhutan.longitude), (Some(27.5), Some(90.5)), "{db}");
            assert_eq!(geo.lookup(ip("202.196.224.1")).and_then(|g| g.country).as_deref(), Some("PH"), "{db}");
            assert_eq!(geo.lookup(ip("2001:218::1")).and_then(|g| g.country).as_deref(), Some("JP"), "{db}");
        }
    }

    #[test]
    fn country_database_gives_countries_only() {
        let geo = open("GeoLite2-Country-Test.mmdb");
        assert_eq!(geo.database_type(), Some("GeoLite2-Country"));
        for (addr, country) in
            [("81.2.69.160", "GB"), ("89.160.20.129", "SE"), ("216.160.83.57", "US"), ("67.43.156.1", "BT")]
        {
            let g = geo.lookup(ip(addr)).unwrap_or_else(|| panic!("no answer for {addr}"));
            assert_eq!(g.country.as_deref(), Some(country), "{addr}");
            assert!(g.country_name.is_some(), "{addr}");
            assert_eq!(
                (g.locality, g.region, g.latitude, g.longitude, g.timezone),
                (None, None, None, None, None),
                "{addr}"
            );
        }
        // Present in the City databases, absent from this one.
        assert_eq!(geo.lookup(ip("175.16.199.1")), None);
    }

    #[test]
    fn geoip2_and_geolite2_differ_where_documented() {
        let geoip2 = open("GeoIP2-City-Test.mmdb");
        let geolite2 = open("GeoLite2-City-Test.mmdb");
        assert_eq!(geoip2.lookup(ip("214.78.120.5")).and_then(|g| g.locality).as_deref(), Some("San Diego"));
        assert_eq!(geolite2.lookup(ip("214.78.120.5")), None);
        assert_eq!(geolite2.lookup(ip("214.78.0.1")).and_then(|g| g.locality).as_deref(), Some("San Diego"));
        assert_eq!(geoip2.lookup(ip("214.78.0.1")), None);
    }

    #[test]
    fn unknown_and_private_addresses_give_nothing() {
        for db in CITY_DBS {
            let geo = open(db);
            for addr in [
                "127.0.0.1",
                "8.8.8.8",
                "10.1.2.3",
                "192.168.0.1",
                "100.64.0.1",
                "::1",
                "fd00::1",
                "fe80::1",
                "0.0.0.0",
            ] {
                assert_eq!(geo.lookup(ip(addr)), None, "{db} {addr}");
            }
        }
    }

    #[test]
    fn ipv4_mapped_ipv6_is_looked_up_as_ipv4() {
        let geo = open("GeoLite2-City-Test.mmdb");
        assert_eq!(geo.lookup(ip("::ffff:81.2.69.160")).and_then(|g| g.locality).as_deref(), Some("London"));
        assert_eq!(geo.lookup(ip("::ffff:127.0.0.1")), None);
    }

    #[test]
    fn corrupt_database_opens_and_gives_nothing() {
        let geo = open("GeoIP2-City-Test-Broken-Double-Format.mmdb");
        let last_warning = || geo.database.as_ref().map(|db| db.last_warning.load(Ordering::Relaxed));
        assert_eq!(last_warning(), Some(i64::MIN));
        assert_eq!(geo.lookup(ip("81.2.69.160")), None);
        let warned_at = last_warning();
        assert!(warned_at > Some(0), "the decode error was not reported");
        for _ in 0..3 {
            assert_eq!(geo.lookup(ip("81.2.69.160")), None);
        }
        assert_eq!(last_warning(), warned_at, "warned again within a minute");
    }

    #[test]
    fn no_database_gives_nothing() {
        let geo = GeoProvider::none();
        assert!(!geo.is_enabled());
        assert_eq!(geo.database_type(), None);
        assert_eq!(geo.lookup(ip("81.2.69.160")), None);
    }

    #[test]
    fn unusable_files_say_what_to_configure() {
        let missing = GeoProvider::open("/nonexistent/GeoLite2-City.mmdb").unwrap_err();
        assert!(matches!(missing, EnrichError::GeoIpOpen { .. }));
        assert!(missing.to_string().contains("geoip.city_db"), "{missing}");
        let not_mmdb = GeoProvider::open(testdata_file("geoip/README.md")).unwrap_err();
        assert!(matches!(not_mmdb, EnrichError::GeoIpOpen { .. }), "{not_mmdb}");
    }

    #[test]
    fn address_classes() {
        for public in ["81.2.69.160", "8.8.8.8", "2001:480:10::1", "100.128.0.1"] {
            assert!(may_be_public(ip(public)), "{public}");
        }
        for never in
            ["10.0.0.1", "172.16.0.1", "169.254.1.1", "255.255.255.255", "224.0.0.1", "0.1.2.3", "ff02::1", "fc00::1"]
        {
            assert!(!may_be_public(ip(never)), "{never}");
        }
    }
}
