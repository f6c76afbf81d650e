//! Identity: who a customer is. Email addresses and phone numbers (normalised to E.164) link customers —
//! cookie-keyed visitors — and conversations to **external contacts**.
//!
//! The rule is a union: identifiers that ever appear together belong to one contact, so two contacts that
//! turn out to share an identifier are merged. The result (which customers share a contact) therefore does not
//! depend on the order in which events arrive. [`plan_link`] computes what to do; storage carries it out.

use crate::ids::ContactId;
use crate::wire::Attributes;
use serde::{Deserialize, Serialize};

/// A lower-cased email address with one `@` and a dotted domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Option<Email> {
        let s = raw.trim().to_lowercase();
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return None;
        }
        let (local, domain) = s.rsplit_once('@')?;
        if local.is_empty()
            || local.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
        {
            return None;
        }
        Some(Email(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A phone number in E.164 (`+4420…`). Numbers without a country code are read in `default_region`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Phone(String);

impl Phone {
    pub fn parse(raw: &str, default_region: Option<&str>) -> Option<Phone> {
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > 40 {
            return None;
        }
        let region = default_region.and_then(|r| r.parse::<phonenumber::country::Id>().ok());
        let number = phonenumber::parse(region, raw).ok()?;
        if !phonenumber::is_valid(&number) {
            return None;
        }
        Some(Phone(number.format().mode(phonenumber::Mode::E164).to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Something that identifies a person across cookies and channels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "camelCase")]
pub enum Identifier {
    Email(Email),
    Phone(Phone),
    /// A messaging-platform id (WhatsApp, LINE, Messenger, X), namespaced by platform: `line:U123`.
    Messaging(String),
}

impl Identifier {
    pub fn kind(&self) -> &'static str {
        match self {
            Identifier::Email(_) => "email",
            Identifier::Phone(_) => "phone",
            Identifier::Messaging(_) => "messaging",
        }
    }

    pub fn value(&self) -> &str {
        match self {
            Identifier::Email(e) => e.as_str(),
            Identifier::Phone(p) => p.as_str(),
            Identifier::Messaging(m) => m,
        }
    }
}

/// What the `traits` of an identify call say about a person.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TraitIdentity {
    pub identifiers: Vec<Identifier>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub display_name: Option<String>,
}

impl TraitIdentity {
    /// Read email/phone/name traits (Genesys names: `email`, `cellPhone`, `homePhone`, `workPhone`, `phone`,
    /// `givenName`, `familyName`, `firstName`, `lastName`, `name`). Unparseable values are ignored.
    pub fn from_traits(traits: &Attributes, default_region: Option<&str>) -> TraitIdentity {
        let mut t = TraitIdentity::default();
        for (key, attr) in traits {
            let v = attr.value.trim();
            if v.is_empty() {
                continue;
            }
            match key.to_ascii_lowercase().as_str() {
                "email" | "emailaddress" | "workemail" | "personalemail" => {
                    if let Some(e) = Email::parse(v) {
                        push_unique(&mut t.identifiers, Identifier::Email(e));
                    }
                }
                "phone" | "cellphone" | "homephone" | "workphone" | "mobilephone" | "phonenumber" => {
                    if let Some(p) = Phone::parse(v, default_region) {
                        push_unique(&mut t.identifiers, Identifier::Phone(p));
                    }
                }
                "givenname" | "firstname" => t.given_name = Some(clip(v)),
                "familyname" | "lastname" => t.family_name = Some(clip(v)),
                "name" | "fullname" | "displayname" => t.display_name = Some(clip(v)),
                _ => {}
            }
        }
        t
    }

    pub fn is_empty(&self) -> bool {
        self.identifiers.is_empty()
            && self.given_name.is_none()
            && self.family_name.is_none()
            && self.display_name.is_none()
    }

    /// The best display name these traits give.
    pub fn name(&self) -> Option<String> {
        if let Some(n) = &self.display_name {
            return Some(n.clone());
        }
        match (&self.given_name, &self.family_name) {
            (Some(g), Some(f)) => Some(format!("{g} {f}")),
            (Some(g), None) => Some(g.clone()),
            (None, Some(f)) => Some(f.clone()),
            (None, None) => None,
        }
    }
}

fn push_unique(v: &mut Vec<Identifier>, id: Identifier) {
    if !v.contains(&id) {
        v.push(id);
    }
}

fn clip(s: &str) -> String {
    s.chars().take(128).collect()
}

/// What storage must do to link a set of identifiers (and optionally a customer's current contact).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkPlan {
    /// Nothing known and nothing to link.
    Nothing,
    /// Create a new contact owning all identifiers.
    Create { identifiers: Vec<Identifier> },
    /// Use `target`; fold every contact in `merge` into it; attach identifiers not yet owned.
    Use { target: ContactId, merge: Vec<ContactId>, attach: Vec<Identifier> },
}

/// Decide how to link `identifiers` (plus the contact the customer already has, if any), given `owner`, a
/// lookup of which contact owns an identifier. The surviving contact is the **oldest** (smallest v7 id), so the
/// outcome does not depend on arrival order.
pub fn plan_link(
    identifiers: &[Identifier],
    current: Option<ContactId>,
    mut owner: impl FnMut(&Identifier) -> Option<ContactId>,
) -> LinkPlan {
    let mut contacts: Vec<ContactId> = current.into_iter().collect();
    let mut attach = Vec::new();
    for id in identifiers {
        match owner(id) {
            Some(c) => {
                if !contacts.contains(&c) {
                    contacts.push(c);
                }
            }
            None => push_unique(&mut attach, id.clone()),
        }
    }
    contacts.sort();
    match contacts.split_first() {
        None if attach.is_empty() => LinkPlan::Nothing,
        None => LinkPlan::Create { identifiers: attach },
        Some((target, rest)) => LinkPlan::Use { target: *target, merge: rest.to_vec(), attach },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    #[test]
    fn emails_and_phones_normalise() {
        assert_eq!(Email::parse(" Ann@Example.COM ").unwrap().as_str(), "ann@example.com");
        assert!(Email::parse("nope").is_none());
        assert!(Email::parse("a@b").is_none());
        assert_eq!(Phone::parse("+44 20 7946 0958", None).unwrap().as_str(), "+442079460958");
        assert_eq!(Phone::parse("(202) 555-0143", Some("US")).unwrap().as_str(), "+12025550143");
        assert_eq!(Phone::parse("010-2345-6789", Some("KR")).unwrap().as_str(), "+821023456789");
        assert!(Phone::parse("12", Some("US")).is_none());
    }

    /// A tiny in-memory identity store that applies plans, for the order-independence property.
    #[derive(Default)]
    struct Mem {
        next: u128,
        owner: BTreeMap<Identifier, ContactId>,
        customer: BTreeMap<u8, ContactId>,
    }

    impl Mem {
        fn link(&mut self, customer: u8, ids: &[Identifier]) {
            let current = self.customer.get(&customer).copied();
            let plan = plan_link(ids, current, |i| self.owner.get(i).copied());
            let target = match plan {
                LinkPlan::Nothing => return,
                LinkPlan::Create { identifiers } => {
                    self.next += 1;
                    let c = ContactId(uuid::Uuid::from_u128(self.next));
                    for i in identifiers {
                        self.owner.insert(i, c);
                    }
                    c
                }
                LinkPlan::Use { target, merge, attach } => {
                    for v in self.owner.values_mut().chain(self.customer.values_mut()) {
                        if merge.contains(v) {
                            *v = target;
                        }
                    }
                    for i in attach {
                        self.owner.insert(i, target);
                    }
                    target
                }
            };
            self.customer.insert(customer, target);
        }

        /// The partition of customers by contact, independent of contact ids.
        fn partition(&self) -> BTreeSet<BTreeSet<u8>> {
            let mut by: BTreeMap<ContactId, BTreeSet<u8>> = BTreeMap::new();
            for (cust, c) in &self.customer {
                by.entry(*c).or_default().insert(*cust);
            }
            by.into_values().collect()
        }
    }

    fn ident(n: u8) -> Identifier {
        Identifier::Email(Email::parse(&format!("p{n}@example.com")).unwrap())
    }

    proptest! {
        /// Any interleaving of identify calls yields the same customers-per-contact partition.
        #[test]
        fn stitching_is_order_independent(
            calls in proptest::collection::vec((0u8..6, proptest::collection::vec(0u8..5, 0..3)), 1..12),
            seed in any::<u64>(),
        ) {
            let calls: Vec<(u8, Vec<Identifier>)> =
                calls.into_iter().map(|(c, ids)| (c, ids.into_iter().map(ident).collect())).collect();
            let mut a = Mem::default();
            for (c, ids) in &calls { a.link(*c, ids); }
            let mut shuffled = calls.clone();
            // Deterministic Fisher-Yates from the seed.
            let mut s = seed | 1;
            for i in (1..shuffled.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                shuffled.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let mut b = Mem::default();
            for (c, ids) in &shuffled { b.link(*c, ids); }
            prop_assert_eq!(a.partition(), b.partition());
        }
    }
}
