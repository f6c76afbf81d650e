//! Permissions, in Genesys spelling (`domain:entity:action`), and roles as sets of them.
//!
//! [`Permission`] is a closed enum: every permission Waymark checks is listed here once, so a typo in a
//! handler is a compile error. [`PermissionSet`] is a bitset, so a check is one AND.

use serde::{Deserialize, Serialize};

macro_rules! permissions {
    ($( $variant:ident = $name:literal ),* $(,)?) => {
        /// One permission Waymark checks.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Permission { $( $variant ),* }

        impl Permission {
            pub const ALL: &'static [Permission] = &[ $( Permission::$variant ),* ];

            pub fn as_str(self) -> &'static str {
                match self { $( Permission::$variant => $name ),* }
            }
        }
    };
}

permissions! {
    JourneyEventView = "journey:event:view",
    JourneyEventTypeView = "journey:eventType:view",
    JourneySessionView = "journey:session:view",
    JourneySessionTypeView = "journey:sessionType:view",
    JourneyOutcomeView = "journey:outcome:view",
    JourneyOutcomeScoresView = "journey:outcomeScores:view",
    JourneySegmentView = "journey:segment:view",
    RoutingWrapupCodeView = "routing:wrapupCode:view",
    RoutingQueueSearch = "routing:queue:search",
    ExternalContactsSessionView = "externalContacts:session:view",
    ExternalContactsView = "externalContacts:contact:view",
    ExternalContactsSegmentAssignmentView = "externalContacts:segmentAssignment:view",
    JourneySegmentAdd = "journey:segment:add",
    JourneySegmentEdit = "journey:segment:edit",
    JourneySegmentDelete = "journey:segment:delete",
    JourneyOutcomeAdd = "journey:outcome:add",
    JourneyOutcomeEdit = "journey:outcome:edit",
    JourneyOutcomeDelete = "journey:outcome:delete",
    JourneyActionMapView = "journey:actionmap:view",
    JourneyActionMapAdd = "journey:actionmap:add",
    JourneyActionMapEdit = "journey:actionmap:edit",
    JourneyActionMapDelete = "journey:actionmap:delete",
    JourneyDeploymentView = "journey:deployment:view",
    JourneyDeploymentAdd = "journey:deployment:add",
    JourneyDeploymentEdit = "journey:deployment:edit",
    JourneyDeploymentDelete = "journey:deployment:delete",
    JourneyConversationEventAdd = "journey:conversationEvent:add",
    RoutingQueueView = "routing:queue:view",
    RoutingQueueEdit = "routing:queue:edit",
    RoutingWrapupCodeEdit = "routing:wrapupCode:edit",
    DirectoryUserView = "directory:user:view",
    DirectoryUserEdit = "directory:user:edit",
    AuthorizationRoleView = "authorization:role:view",
    AuthorizationRoleEdit = "authorization:role:edit",
    OauthClientEdit = "oauth:client:edit",
    OauthClientView = "oauth:client:view",
    AuthorizationDivisionView = "authorization:division:view",
    AuthorizationDivisionEdit = "authorization:division:edit",
    // Manage other people's API tokens (one's own tokens need no permission).
    AuthorizationTokenEdit = "authorization:token:edit",
}

impl Permission {
    /// Parse a permission string. Case-insensitive on the entity so that the API spelling
    /// `journey:outcomescores:view` is the same permission as `journey:outcomeScores:view`.
    pub fn parse(s: &str) -> Option<Permission> {
        let s = s.trim();
        Permission::ALL.iter().copied().find(|p| p.as_str().eq_ignore_ascii_case(s))
    }

    /// Expand a pattern with `*` wildcards (`journey:*:view`, `journey:segment:*`, `*`) into permissions.
    pub fn expand(pattern: &str) -> Vec<Permission> {
        let parts: Vec<&str> = pattern.trim().split(':').collect();
        if parts == ["*"] {
            return Permission::ALL.to_vec();
        }
        if parts.len() != 3 {
            return Permission::parse(pattern).into_iter().collect();
        }
        Permission::ALL
            .iter()
            .copied()
            .filter(|p| {
                p.as_str()
                    .split(':')
                    .zip(parts.iter())
                    .all(|(have, want)| *want == "*" || have.eq_ignore_ascii_case(want))
            })
            .collect()
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Permission {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Permission::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown permission {s:?}")))
    }
}

/// A set of permissions as a bitset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PermissionSet(u64);

impl PermissionSet {
    pub const EMPTY: PermissionSet = PermissionSet(0);

    pub fn all() -> Self {
        Permission::ALL.iter().copied().collect()
    }

    pub fn contains(self, p: Permission) -> bool {
        self.0 & (1u64 << p as u8) != 0
    }

    pub fn insert(&mut self, p: Permission) {
        self.0 |= 1u64 << p as u8;
    }

    pub fn union(self, other: PermissionSet) -> PermissionSet {
        PermissionSet(self.0 | other.0)
    }

    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL.iter().copied().filter(move |p| self.contains(*p))
    }

    /// The built-in **User** role: exactly the ten permissions an agent needs for the Customer Journey view.
    pub fn user_role() -> Self {
        use Permission::*;
        [
            JourneyEventView,
            JourneyEventTypeView,
            JourneySessionView,
            JourneySessionTypeView,
            JourneyOutcomeView,
            JourneyOutcomeScoresView,
            JourneySegmentView,
            RoutingWrapupCodeView,
            RoutingQueueSearch,
            ExternalContactsSessionView,
        ]
        .into_iter()
        .collect()
    }

    /// The built-in **Admin** role: everything.
    pub fn admin_role() -> Self {
        Self::all()
    }
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        let mut s = PermissionSet::EMPTY;
        for p in iter {
            s.insert(p);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_in_the_bitset() {
        assert!(Permission::ALL.len() <= 64);
    }

    #[test]
    fn user_role_has_exactly_the_ten_seed_permissions() {
        let names: Vec<&str> = PermissionSet::user_role().iter().map(|p| p.as_str()).collect();
        assert_eq!(names.len(), 10);
        for n in [
            "journey:event:view",
            "journey:eventType:view",
            "journey:session:view",
            "journey:sessionType:view",
            "journey:outcome:view",
            "journey:outcomeScores:view",
            "journey:segment:view",
            "routing:wrapupCode:view",
            "routing:queue:search",
            "externalContacts:session:view",
        ] {
            assert!(names.contains(&n), "{n}");
        }
    }

    #[test]
    fn api_spelling_and_wildcards() {
        assert_eq!(Permission::parse("journey:outcomescores:view"), Some(Permission::JourneyOutcomeScoresView));
        assert!(Permission::parse("journey:nothing:view").is_none());
        let seg = Permission::expand("journey:segment:*");
        assert_eq!(seg.len(), 4);
        assert!(Permission::expand("*:*:view").contains(&Permission::RoutingQueueView));
    }
}
