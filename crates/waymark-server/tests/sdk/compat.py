"""Drive the official Genesys Cloud Python SDK (purecloudplatformclientv2 269.0.0) against a running Waymark.

Usage: python3 compat.py <base_url> <client_id> <client_secret> <expected.json>

`expected.json` (written by the Rust test `sdk_compat`) names a session, its contact and the values the SDK
must deserialize. Exits 0 when every check passes; prints what failed and exits 1 otherwise. The SDK is
required: an ImportError fails the test (exit 2), it is never skipped.
"""
import datetime
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
import warnings

warnings.simplefilter("ignore", DeprecationWarning)

try:
    import PureCloudPlatformClientV2 as gc
    from PureCloudPlatformClientV2.rest import ApiException
except ImportError as e:  # pragma: no cover - the test must fail loudly, not skip
    print(f"the Genesys Python SDK is not installed: {e}; run: python3 -m pip install purecloudplatformclientv2==269.0.0")
    sys.exit(2)

FAILURES = []


def check(cond, what):
    if cond:
        print(f"ok   {what}")
    else:
        print(f"FAIL {what}")
        FAILURES.append(what)


def no_outdated_enums(model, where):
    """The SDK replaces enum values it does not know with 'outdated_sdk_version'."""
    found = []

    def walk(v, path):
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, f"{path}.{k}")
        elif isinstance(v, list):
            for i, x in enumerate(v):
                walk(x, f"{path}[{i}]")
        elif v == "outdated_sdk_version":
            found.append(path)

    walk(model.to_dict(), where)
    check(not found, f"{where}: every enum value is one the SDK knows {found}")


def no_nulls(value, path, found):
    if value is None:
        found.append(path)
    elif isinstance(value, dict):
        for k, v in value.items():
            no_nulls(v, f"{path}.{k}", found)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            no_nulls(v, f"{path}[{i}]", found)
    return found


def raw_get(base, token, path):
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.headers.get("Content-Type", ""), json.loads(r.read().decode("utf-8"))


def is_utc(dt):
    return isinstance(dt, datetime.datetime) and dt.tzinfo is not None and dt.utcoffset() == datetime.timedelta(0)


def main():
    base, client_id, secret, expected_path = sys.argv[1:5]
    with open(expected_path, encoding="utf-8") as f:
        exp = json.load(f)
    print(f"SDK {gc.__name__}, server {base}")

    # 1. Client-credentials login through the SDK itself.
    client = gc.ApiClient(host=base).get_client_credentials_token(client_id, secret)
    check(bool(client.access_token) and client.access_token.startswith("wm_"), "get_client_credentials_token gave a token")
    try:
        gc.ApiClient(host=base).get_client_credentials_token(client_id, secret + "x")
        check(False, "a wrong client secret is refused")
    except Exception as e:  # the SDK raises on non-2xx during login
        check(True, f"a wrong client secret is refused ({type(e).__name__})")

    journey = gc.JourneyApi(client)
    contacts = gc.ExternalContactsApi(client)
    sid = exp["sessionId"]

    # 2. One session.
    s = journey.get_journey_session(sid)
    check(type(s).__name__ == "Session", f"get_journey_session -> {type(s).__name__}")
    check(s.id == sid, "session id")
    check(s.type == "web", f"session type {s.type!r}")
    check(s.customer_id == exp["cookie"], f"customerId {s.customer_id!r}")
    check(s.customer_id_type == "cookie", f"customerIdType {s.customer_id_type!r}")
    check(is_utc(s.created_date), f"createdDate is an aware UTC datetime {s.created_date!r}")
    check(s.created_date.isoformat().startswith(exp["createdDate"][:19]), "createdDate value")
    check(s.away_date is None or is_utc(s.away_date), "awayDate is UTC when present")
    check(s.event_count == exp["eventCount"], f"eventCount {s.event_count} == {exp['eventCount']}")
    check(s.pageview_count == exp["pageviewCount"], f"pageviewCount {s.pageview_count}")
    check(s.external_contact is not None and s.external_contact.id == exp["contactId"], "externalContact.id")
    check(s.browser is not None and s.browser.family == exp["browserFamily"], f"browser.family {getattr(s.browser, 'family', None)!r}")
    check(s.device is not None and s.device.category == exp["deviceCategory"], f"device.category {getattr(s.device, 'category', None)!r}")
    check(s.last_page is not None and s.last_page.url == exp["lastPageUrl"], f"lastPage.url {getattr(s.last_page, 'url', None)!r}")
    check(s.mkt_campaign is not None and s.mkt_campaign.source == exp["utmSource"], "mktCampaign.source")
    check(s.referrer is not None and s.referrer.medium == exp["referrerMedium"], f"referrer.medium {getattr(s.referrer, 'medium', None)!r}")
    check(s.search_terms == exp["searchTerms"], f"searchTerms {s.search_terms!r}")
    check(s.last_event is not None and s.last_event.event_name == exp["lastEventName"], "lastEvent.eventName")
    no_outdated_enums(s, "Session")

    # 3. Its events, paged with the cursor the server hands out, and filtered by type.
    page1 = journey.get_journey_session_events(sid, page_size="1")
    check(type(page1).__name__ == "EventListing", f"get_journey_session_events -> {type(page1).__name__}")
    check(len(page1.entities) == 1, "pageSize=1 gives one event")
    check(bool(page1.next_uri), f"nextUri present: {page1.next_uri!r}")
    after = urllib.parse.parse_qs(urllib.parse.urlparse(page1.next_uri or "").query).get("after", [None])[0]
    seen = [e.id for e in page1.entities]
    while after:
        page = journey.get_journey_session_events(sid, page_size="1", after=after)
        seen += [e.id for e in page.entities]
        after = urllib.parse.parse_qs(urllib.parse.urlparse(page.next_uri or "").query).get("after", [None])[0]
    check(len(seen) == exp["eventCount"] and len(set(seen)) == len(seen), f"cursor paging visits every event once ({len(seen)})")
    events = journey.get_journey_session_events(sid, page_size="200", event_type="com.genesys.journey.WebEvent")
    names = [e.web_event.event_name for e in events.entities if e.web_event is not None]
    check(names == exp["eventNames"], f"event names in order {names}")
    first = events.entities[0]
    check(first.event_type == "com.genesys.journey.WebEvent", f"eventType {first.event_type!r}")
    check(first.session is not None and first.session.id == sid, "event.session.id")
    check(is_utc(first.created_date), "event createdDate is UTC")
    check(first.web_event.page is not None and first.web_event.page.url == exp["firstPageUrl"], "webEvent.page.url")
    check(first.customer_id == exp["cookie"], "event customerId")
    for e in events.entities:
        no_outdated_enums(e, f"Event {e.id}")

    # 4. The contact's journey sessions (the Customer Journey tab's list).
    listing = contacts.get_externalcontacts_contact_journey_sessions(exp["contactId"], page_size="50", include_merged=True)
    check(type(listing).__name__ == "SessionListing", f"get_externalcontacts_contact_journey_sessions -> {type(listing).__name__}")
    ids = [x.id for x in listing.entities]
    check(sorted(ids) == sorted(exp["contactSessionIds"]), f"contact sessions {ids}")
    dates = [x.created_date for x in listing.entities]
    check(dates == sorted(dates, reverse=True), "newest first")
    same = gc.JourneyApi(client).get_externalcontacts_contact_journey_sessions(exp["contactId"], page_size="1")
    check(len(same.entities) == 1 and bool(same.next_uri), "JourneyApi variant pages too")
    for x in listing.entities:
        no_outdated_enums(x, f"listed Session {x.id}")

    # 5. Errors surface as ApiException with the HTTP status.
    try:
        journey.get_journey_session("00000000-0000-7000-8000-000000000000")
        check(False, "unknown session raises")
    except ApiException as e:
        check(e.status == 404, f"unknown session -> {e.status}")
    bad = gc.ApiClient(host=base)
    bad.access_token = "wm_0123456789abcdef_forged"
    try:
        gc.JourneyApi(bad).get_journey_session(sid)
        check(False, "forged token raises")
    except ApiException as e:
        check(e.status == 401, f"forged token -> {e.status}")

    # 6. Wire format: JSON content type, no nulls anywhere (an enum sent as null crashes the SDK).
    for path in [f"/api/v2/journey/sessions/{sid}", f"/api/v2/journey/sessions/{sid}/events",
                 f"/api/v2/externalcontacts/contacts/{exp['contactId']}/journey/sessions"]:
        ctype, body = raw_get(base, client.access_token, path)
        check(ctype.startswith("application/json"), f"{path} is application/json ({ctype})")
        nulls = no_nulls(body, "$", [])
        check(not nulls, f"{path} has no null values {nulls[:5]}")

    if FAILURES:
        print(f"\n{len(FAILURES)} check(s) failed")
        sys.exit(1)
    print("\nall SDK compatibility checks passed")


if __name__ == "__main__":
    main()
