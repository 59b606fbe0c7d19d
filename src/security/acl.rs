//! Access control lists with Kafka's model, and the authorizer that decides on them.
//!
//! The numbering of resource types, pattern types, operations and permission types is Kafka's wire
//! numbering (CreateAcls, DescribeAcls, DeleteAcls and the `*_authorized_operations` bit fields use it).
//! The rules are those of Kafka's `StandardAuthorizer`:
//! * a super user (`super.users`) may do anything;
//! * an ACL applies to a resource when its pattern matches the resource's name: LITERAL equal or the
//!   wildcard `*`, PREFIXED a prefix of the name;
//! * an ACL applies to a request when its principal is the requester's or `User:*`, and its host the
//!   requester's address or `*`;
//! * any applying DENY for the operation (or ALL) refuses, whatever ALLOWs there are;
//! * an ALLOW for the operation, for ALL, or for an operation that implies it (READ, WRITE, DELETE and
//!   ALTER imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS) permits;
//! * a resource no ACL applies to at all is refused unless `allow.everyone.if.no.acl.found` is true.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The class name of Kafka's KRaft authorizer: setting `authorizer.class.name` to it turns ACLs on.
pub const STANDARD_AUTHORIZER_CLASS: &str =
    "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

/// The name of the single CLUSTER resource (Kafka's `kafka-cluster`).
pub const CLUSTER_RESOURCE_NAME: &str = "kafka-cluster";

/// The wildcard resource name of a LITERAL pattern, and the wildcard host.
pub const WILDCARD: &str = "*";

/// The wildcard principal.
pub const WILDCARD_PRINCIPAL: &str = "User:*";

/// The resource name Kafka's `authorizeByResourceType` asks the ordinary check about first.
const BY_RESOURCE_TYPE_PROBE: &str = "hardcode";

macro_rules! kafka_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $code:expr => $text:expr),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Kafka's wire value.
            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code),+ }
            }

            pub fn from_code(code: i8) -> Option<$name> {
                match code { $($code => Some($name::$variant),)+ _ => None }
            }

            /// Kafka's name (as `kafka-acls` prints and parses it, case-insensitively).
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn from_name(name: &str) -> Option<$name> {
                let wanted = name.replace(['-', ' '], "_");
                [$($name::$variant),+]
                    .into_iter()
                    .find(|v| v.name().eq_ignore_ascii_case(&wanted))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

kafka_enum!(
    /// What an ACL protects. ANY only appears in filters.
    ResourceType {
        Any = 1 => "ANY",
        Topic = 2 => "TOPIC",
        Group = 3 => "GROUP",
        Cluster = 4 => "CLUSTER",
        TransactionalId = 5 => "TRANSACTIONAL_ID",
        DelegationToken = 6 => "DELEGATION_TOKEN",
        User = 7 => "USER",
    }
);

kafka_enum!(
    /// How an ACL's resource name is matched. ANY and MATCH only appear in filters.
    PatternType {
        Any = 1 => "ANY",
        Match = 2 => "MATCH",
        Literal = 3 => "LITERAL",
        Prefixed = 4 => "PREFIXED",
    }
);

kafka_enum!(
    /// What a request does to a resource. ANY only appears in filters.
    AclOperation {
        Any = 1 => "ANY",
        All = 2 => "ALL",
        Read = 3 => "READ",
        Write = 4 => "WRITE",
        Create = 5 => "CREATE",
        Delete = 6 => "DELETE",
        Alter = 7 => "ALTER",
        Describe = 8 => "DESCRIBE",
        ClusterAction = 9 => "CLUSTER_ACTION",
        DescribeConfigs = 10 => "DESCRIBE_CONFIGS",
        AlterConfigs = 11 => "ALTER_CONFIGS",
        IdempotentWrite = 12 => "IDEMPOTENT_WRITE",
        CreateTokens = 13 => "CREATE_TOKENS",
        DescribeTokens = 14 => "DESCRIBE_TOKENS",
    }
);

kafka_enum!(
    /// Whether an ACL permits or refuses. ANY only appears in filters.
    PermissionType {
        Any = 1 => "ANY",
        Deny = 2 => "DENY",
        Allow = 3 => "ALLOW",
    }
);

impl AclOperation {
    /// The operations an ALLOW of `self` also permits (Kafka's implied operations).
    fn implies(self, wanted: AclOperation) -> bool {
        self == wanted
            || self == AclOperation::All
            || (wanted == AclOperation::Describe
                && matches!(
                    self,
                    AclOperation::Read
                        | AclOperation::Write
                        | AclOperation::Delete
                        | AclOperation::Alter
                ))
            || (wanted == AclOperation::DescribeConfigs && self == AclOperation::AlterConfigs)
    }

    /// The operations that apply to a resource type, in the order of Kafka's `*_authorized_operations`.
    pub fn applicable_to(resource_type: ResourceType) -> &'static [AclOperation] {
        use AclOperation::*;
        match resource_type {
            ResourceType::Topic => &[
                Read,
                Write,
                Create,
                Delete,
                Alter,
                Describe,
                DescribeConfigs,
                AlterConfigs,
            ],
            ResourceType::Group => &[Read, Describe, Delete],
            ResourceType::Cluster => &[
                Create,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                Alter,
                Describe,
            ],
            ResourceType::TransactionalId => &[Describe, Write],
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
            ResourceType::Any => &[],
        }
    }
}

/// One access control entry bound to a resource pattern: Kafka's `AclBinding`, and the content of the
/// metadata log's ACL records.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    /// `Type:name`, e.g. `User:alice`, or `User:*`.
    pub principal: String,
    /// An IP address, or `*`.
    pub host: String,
    pub operation: AclOperation,
    pub permission: PermissionType,
}

/// Why a binding cannot be stored (CreateAcls answers INVALID_REQUEST with this message, in Kafka's
/// words where Kafka refuses the same binding).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    #[error("Invalid resourceType {0}")]
    ResourceType(ResourceType),
    #[error("Invalid patternType {0}")]
    PatternType(PatternType),
    #[error("Invalid operation {0}")]
    Operation(AclOperation),
    #[error("Invalid permissionType {0}")]
    Permission(PermissionType),
    #[error("Invalid empty resource name")]
    EmptyName,
    #[error("The only valid name for the CLUSTER resource is {CLUSTER_RESOURCE_NAME}")]
    ClusterName(String),
    #[error("Could not parse principal from `{0}` (no colon is present separating the principal type from the principal name)")]
    Principal(String),
    #[error("the host of an ACL must not be empty (use * for any host)")]
    EmptyHost,
}

impl AclBinding {
    /// A binding from CreateAcls wire values; unknown codes are named in the error.
    pub fn from_wire(
        resource_type: i8,
        resource_name: &str,
        pattern_type: i8,
        principal: &str,
        host: &str,
        operation: i8,
        permission: i8,
    ) -> Result<AclBinding, String> {
        let filter = AclFilter::from_wire(
            resource_type,
            Some(resource_name),
            pattern_type,
            Some(principal),
            Some(host),
            operation,
            permission,
        )?;
        let binding = AclBinding {
            resource_type: filter.resource_type,
            resource_name: resource_name.to_string(),
            pattern_type: filter.pattern_type,
            principal: principal.to_string(),
            host: host.to_string(),
            operation: filter.operation,
            permission: filter.permission,
        };
        binding.validate().map_err(|e| e.to_string())?;
        Ok(binding)
    }

    /// Refuses what Kafka refuses before storing an ACL, and nothing more: the broker's
    /// `AclApis.handleCreateAcls` (a CLUSTER resource not named `kafka-cluster`, an empty name), then
    /// the controller's `AclControlManager.validateNewAcl` (the filter-only values ANY and MATCH), and a
    /// principal without `Type:` (Kafka's `StandardAcl.kafkaPrincipal` cannot parse it either).
    ///
    /// Like Kafka, it accepts an operation that does not apply to the resource type (GROUP WRITE: it
    /// simply never permits anything) and a host that is not an IP address (it never matches a client,
    /// whose address is compared). An empty host is refused: Kafka 4.x stores it, but it can only be a
    /// mistake for `*`, and newer Kafka refuses it too.
    pub fn validate(&self) -> Result<(), AclError> {
        if self.resource_type == ResourceType::Cluster
            && self.resource_name != CLUSTER_RESOURCE_NAME
        {
            return Err(AclError::ClusterName(self.resource_name.clone()));
        }
        if self.resource_name.is_empty() {
            return Err(AclError::EmptyName);
        }
        if self.resource_type == ResourceType::Any {
            return Err(AclError::ResourceType(self.resource_type));
        }
        if !matches!(
            self.pattern_type,
            PatternType::Literal | PatternType::Prefixed
        ) {
            return Err(AclError::PatternType(self.pattern_type));
        }
        if self.operation == AclOperation::Any {
            return Err(AclError::Operation(self.operation));
        }
        if self.permission == PermissionType::Any {
            return Err(AclError::Permission(self.permission));
        }
        if !self.principal.contains(':') {
            return Err(AclError::Principal(self.principal.clone()));
        }
        if self.host.is_empty() {
            return Err(AclError::EmptyHost);
        }
        Ok(())
    }

    /// Whether this ACL's pattern covers the resource `name` of `resource_type`.
    fn covers(&self, resource_type: ResourceType, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern_type {
                PatternType::Literal => {
                    self.resource_name == name || self.resource_name == WILDCARD
                }
                PatternType::Prefixed => name.starts_with(&self.resource_name),
                PatternType::Any | PatternType::Match => false,
            }
    }

    fn applies_to(&self, principal: &str, host: &IpAddr) -> bool {
        (self.principal == principal || self.principal == WILDCARD_PRINCIPAL)
            && (self.host == WILDCARD
                || self
                    .host
                    .parse::<IpAddr>()
                    .is_ok_and(|h| h == *host || ip_v4_equivalent(&h) == ip_v4_equivalent(host)))
    }
}

/// An IPv4-mapped IPv6 address and its IPv4 address are the same client.
fn ip_v4_equivalent(ip: &IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(*ip, IpAddr::V4),
        IpAddr::V4(_) => *ip,
    }
}

/// Selects ACLs (DescribeAcls, DeleteAcls): `None` fields match anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: ResourceType,
    pub resource_name: Option<String>,
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: AclOperation,
    pub permission: PermissionType,
}

impl AclFilter {
    /// A filter from DescribeAcls/DeleteAcls wire values; unknown codes are named in the error.
    #[allow(clippy::too_many_arguments)]
    pub fn from_wire(
        resource_type: i8,
        resource_name: Option<&str>,
        pattern_type: i8,
        principal: Option<&str>,
        host: Option<&str>,
        operation: i8,
        permission: i8,
    ) -> Result<AclFilter, String> {
        Ok(AclFilter {
            resource_type: ResourceType::from_code(resource_type)
                .ok_or_else(|| format!("unknown resource type {resource_type}"))?,
            resource_name: resource_name.map(String::from),
            pattern_type: PatternType::from_code(pattern_type)
                .ok_or_else(|| format!("unknown pattern type {pattern_type}"))?,
            principal: principal.map(String::from),
            host: host.map(String::from),
            operation: AclOperation::from_code(operation)
                .ok_or_else(|| format!("unknown operation {operation}"))?,
            permission: PermissionType::from_code(permission)
                .ok_or_else(|| format!("unknown permission type {permission}"))?,
        })
    }

    pub fn matches(&self, acl: &AclBinding) -> bool {
        let resource_type =
            self.resource_type == ResourceType::Any || self.resource_type == acl.resource_type;
        let pattern = match (self.pattern_type, &self.resource_name) {
            (PatternType::Any, None) | (PatternType::Match, None) => true,
            (PatternType::Any, Some(name)) => *name == acl.resource_name,
            // MATCH: every ACL that would apply to a resource of this name.
            (PatternType::Match, Some(name)) => match acl.pattern_type {
                PatternType::Literal => acl.resource_name == *name || acl.resource_name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&acl.resource_name),
                _ => false,
            },
            (wanted, name) => {
                wanted == acl.pattern_type && name.as_ref().is_none_or(|n| *n == acl.resource_name)
            }
        };
        let principal = self.principal.as_ref().is_none_or(|p| *p == acl.principal);
        let host = self.host.as_ref().is_none_or(|h| *h == acl.host);
        let operation = self.operation == AclOperation::Any || self.operation == acl.operation;
        let permission =
            self.permission == PermissionType::Any || self.permission == acl.permission;
        resource_type && pattern && principal && host && operation && permission
    }
}

/// Decides whether a principal may perform an operation, from the ACLs of the metadata image.
#[derive(Debug, Clone, Default)]
pub struct Authorizer {
    /// `authorizer.class.name` names the StandardAuthorizer; otherwise every request is allowed.
    pub enabled: bool,
    /// `super.users`: principals that bypass the ACLs.
    pub super_users: Vec<String>,
    /// `allow.everyone.if.no.acl.found`.
    pub allow_if_no_acl: bool,
}

/// The principal and address a request comes from.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    pub principal: &'a str,
    pub host: IpAddr,
}

impl Authorizer {
    /// The authorizer Kafka's settings describe; an `authorizer.class.name` Kavka does not have is an error
    /// rather than a silently open cluster.
    pub fn from_config(
        class_name: &str,
        super_users: &[String],
        allow_if_no_acl: bool,
    ) -> Result<Authorizer, String> {
        let enabled = match class_name.trim() {
            "" => false,
            STANDARD_AUTHORIZER_CLASS => true,
            other => {
                return Err(format!(
                    "authorizer.class.name {other} is not available: use {STANDARD_AUTHORIZER_CLASS} (or leave it empty for no authorization)"
                ))
            }
        };
        Ok(Authorizer {
            enabled,
            super_users: super_users
                .iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            allow_if_no_acl,
        })
    }

    /// Whether `who` may perform `operation` on the resource `name` of `resource_type`, given `acls`.
    pub fn authorize<'a>(
        &self,
        acls: impl IntoIterator<Item = &'a AclBinding>,
        who: Requester<'_>,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        if !self.enabled || self.super_users.iter().any(|s| s == who.principal) {
            return true;
        }
        let mut resource_has_acls = false;
        let mut allowed = false;
        for acl in acls {
            if !acl.covers(resource_type, name) {
                continue;
            }
            resource_has_acls = true;
            if !acl.applies_to(who.principal, &who.host) {
                continue;
            }
            match acl.permission {
                PermissionType::Deny
                    if acl.operation == operation || acl.operation == AclOperation::All =>
                {
                    return false
                }
                PermissionType::Allow if acl.operation.implies(operation) => allowed = true,
                _ => {}
            }
        }
        allowed || (!resource_has_acls && self.allow_if_no_acl)
    }

    /// Whether `who` may perform `operation` on at least one resource of `resource_type`: Kafka's
    /// `authorizeByResourceType` (the default method of its `Authorizer` interface, which
    /// StandardAuthorizer keeps), which lets a producer with WRITE on any topic be idempotent.
    ///
    /// As Kafka does, it first decides for a made-up resource name, `hardcode`: that lets super users
    /// through whatever DENYs there are, and `allow.everyone.if.no.acl.found` through when no ACL covers
    /// such a name. Otherwise it looks at the ACLs that apply to `who` for exactly `operation` or ALL
    /// (implied operations do not count here): a DENY on the LITERAL `*` refuses; an ALLOW on the
    /// LITERAL `*` permits; any other ALLOW permits unless a DENY dominates its pattern (a LITERAL DENY
    /// of the same name for a LITERAL ALLOW, or a PREFIXED DENY on a prefix of its name).
    pub fn authorize_any<'a>(
        &self,
        acls: impl IntoIterator<Item = &'a AclBinding> + Clone,
        who: Requester<'_>,
        operation: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        if self.authorize(
            acls.clone(),
            who,
            operation,
            resource_type,
            BY_RESOURCE_TYPE_PROBE,
        ) {
            return true;
        }
        let applying: Vec<&AclBinding> = acls
            .into_iter()
            .filter(|acl| {
                acl.resource_type == resource_type
                    && acl.applies_to(who.principal, &who.host)
                    && (acl.operation == operation || acl.operation == AclOperation::All)
            })
            .collect();
        let (denies, allows): (Vec<&AclBinding>, Vec<&AclBinding>) = applying
            .into_iter()
            .partition(|acl| acl.permission == PermissionType::Deny);
        let is_wildcard = |acl: &AclBinding| {
            acl.pattern_type == PatternType::Literal && acl.resource_name == WILDCARD
        };
        if denies.iter().any(|deny| is_wildcard(deny)) {
            return false;
        }
        if allows.iter().any(|allow| is_wildcard(allow)) {
            return true;
        }
        allows.iter().any(|allow| {
            !denies.iter().any(|deny| match deny.pattern_type {
                PatternType::Literal => {
                    allow.pattern_type == PatternType::Literal
                        && deny.resource_name == allow.resource_name
                }
                PatternType::Prefixed => allow.resource_name.starts_with(&deny.resource_name),
                PatternType::Any | PatternType::Match => false,
            })
        })
    }

    /// Kafka's `*_authorized_operations` bit field: bit n set when operation code n is permitted.
    pub fn authorized_operations<'a>(
        &self,
        acls: impl IntoIterator<Item = &'a AclBinding> + Clone,
        who: Requester<'_>,
        resource_type: ResourceType,
        name: &str,
    ) -> i32 {
        AclOperation::applicable_to(resource_type)
            .iter()
            .filter(|op| self.authorize(acls.clone(), who, **op, resource_type, name))
            .fold(0, |bits, op| bits | (1 << op.code()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(
        resource_type: ResourceType,
        name: &str,
        pattern_type: PatternType,
        principal: &str,
        operation: AclOperation,
        permission: PermissionType,
    ) -> AclBinding {
        AclBinding {
            resource_type,
            resource_name: name.into(),
            pattern_type,
            principal: principal.into(),
            host: WILDCARD.into(),
            operation,
            permission,
        }
    }

    fn on() -> Authorizer {
        Authorizer::from_config(STANDARD_AUTHORIZER_CLASS, &["User:admin".into()], false)
            .expect("authorizer")
    }

    fn who(principal: &str) -> Requester<'_> {
        Requester {
            principal,
            host: "127.0.0.1".parse().expect("ip"),
        }
    }

    use AclOperation::*;
    use PatternType::*;
    use PermissionType::*;
    use ResourceType::*;

    #[test]
    fn allow_read_implies_describe_but_not_write() {
        let acls = [acl(
            Topic,
            "temperature",
            Literal,
            "User:alice",
            Read,
            Allow,
        )];
        let a = on();
        assert!(a.authorize(&acls, who("User:alice"), Read, Topic, "temperature"));
        assert!(a.authorize(&acls, who("User:alice"), Describe, Topic, "temperature"));
        assert!(!a.authorize(&acls, who("User:alice"), Write, Topic, "temperature"));
        assert!(!a.authorize(&acls, who("User:alice"), Read, Topic, "other"));
        assert!(!a.authorize(&acls, who("User:bob"), Read, Topic, "temperature"));
    }

    #[test]
    fn deny_wins_and_super_users_bypass() {
        let acls = [
            acl(Topic, "*", Literal, "User:*", All, Allow),
            acl(Topic, "secret", Prefixed, "User:alice", Read, Deny),
        ];
        let a = on();
        assert!(a.authorize(&acls, who("User:alice"), Read, Topic, "public"));
        assert!(!a.authorize(&acls, who("User:alice"), Read, Topic, "secret-plans"));
        // A DENY of READ does not deny DESCRIBE (Kafka denies only the named operation or ALL).
        assert!(a.authorize(&acls, who("User:alice"), Describe, Topic, "secret-plans"));
        assert!(a.authorize(&acls, who("User:bob"), Read, Topic, "secret-plans"));
        assert!(a.authorize(&acls, who("User:admin"), Delete, Cluster, "kafka-cluster"));
    }

    #[test]
    fn hosts_and_empty_resources() {
        let mut only_local = acl(Group, "app", Literal, "User:alice", Read, Allow);
        only_local.host = "10.0.0.1".into();
        let a = on();
        assert!(!a.authorize([&only_local], who("User:alice"), Read, Group, "app"));
        let mapped = Requester {
            principal: "User:alice",
            host: "::ffff:10.0.0.1".parse().expect("ip"),
        };
        assert!(a.authorize([&only_local], mapped, Read, Group, "app"));
        // No ACL on a resource: refused, unless allow.everyone.if.no.acl.found.
        assert!(!a.authorize([&only_local], who("User:alice"), Read, Group, "other"));
        let open = Authorizer {
            allow_if_no_acl: true,
            ..on()
        };
        assert!(open.authorize([&only_local], who("User:bob"), Read, Group, "other"));
        // ... but a resource with ACLs for someone else stays closed.
        assert!(!open.authorize([&only_local], who("User:bob"), Read, Group, "app"));
        assert!(Authorizer::default().authorize(
            [],
            who("User:x"),
            Alter,
            Cluster,
            "kafka-cluster"
        ));
    }

    #[test]
    fn authorize_any_for_idempotent_producers() {
        let a = on();
        let acls = [acl(Topic, "temp", Prefixed, "User:alice", Write, Allow)];
        assert!(a.authorize_any(&acls, who("User:alice"), Write, Topic));
        assert!(!a.authorize_any(&acls, who("User:bob"), Write, Topic));
        let denied = [
            acls[0].clone(),
            acl(Topic, "te", Prefixed, "User:alice", Write, Deny),
        ];
        assert!(!a.authorize_any(&denied, who("User:alice"), Write, Topic));
    }

    #[test]
    fn filters_match_like_kafka() {
        let literal = acl(Topic, "temperature", Literal, "User:alice", Read, Allow);
        let prefixed = acl(Topic, "temp", Prefixed, "User:alice", Read, Allow);
        let wildcard = acl(Topic, "*", Literal, "User:bob", Write, Deny);
        let filter = |pattern_type, name: Option<&str>| AclFilter {
            resource_type: ResourceType::Any,
            resource_name: name.map(String::from),
            pattern_type,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission: PermissionType::Any,
        };
        let all = [&literal, &prefixed, &wildcard];
        let count = |f: &AclFilter| all.iter().filter(|a| f.matches(a)).count();
        assert_eq!(count(&filter(PatternType::Any, None)), 3);
        assert_eq!(count(&filter(Match, Some("temperature"))), 3);
        assert_eq!(count(&filter(Match, Some("other"))), 1);
        assert_eq!(count(&filter(Literal, Some("temperature"))), 1);
        assert_eq!(count(&filter(Prefixed, None)), 1);
        assert_eq!(count(&filter(PatternType::Any, Some("temp"))), 1);
    }

    #[test]
    fn validation_and_names() {
        let good = acl(Topic, "t", Literal, "User:alice", Read, Allow);
        assert_eq!(good.validate(), Ok(()));
        let bad_cluster = acl(Cluster, "x", Literal, "User:a", Alter, Allow);
        assert!(matches!(
            bad_cluster.validate(),
            Err(AclError::ClusterName(_))
        ));
        let bad_principal = acl(Topic, "t", Literal, "alice", Read, Allow);
        assert!(matches!(
            bad_principal.validate(),
            Err(AclError::Principal(_))
        ));
        assert_eq!(
            bad_cluster.validate().map_err(|e| e.to_string()),
            Err("The only valid name for the CLUSTER resource is kafka-cluster".into())
        );
        assert_eq!(
            AclOperation::from_name("idempotent-write"),
            Some(IdempotentWrite)
        );
        assert_eq!(AclOperation::from_name("Read"), Some(Read));
        assert_eq!(ResourceType::from_code(2), Some(Topic));
        assert_eq!(PatternType::Prefixed.code(), 4);
        assert!(
            Authorizer::from_config("kafka.security.authorizer.AclAuthorizer", &[], false).is_err()
        );
    }

    /// What Kafka's CreateAcls refuses (`AclApis.handleCreateAcls`, `AclControlManager.validateNewAcl`)
    /// and what it stores although it never permits anything.
    #[test]
    fn validation_refuses_what_kafka_refuses_only() {
        let base = acl(Topic, "t", Literal, "User:a", Read, Allow);
        let with = |change: fn(&mut AclBinding)| {
            let mut b = base.clone();
            change(&mut b);
            b.validate()
        };
        // Accepted, as by Kafka: operations that do not apply to the type, any host text, other
        // principal types, every concrete resource type.
        assert_eq!(with(|b| b.resource_type = Group), Ok(()));
        assert_eq!(
            with(|b| {
                b.resource_type = Group;
                b.operation = Write;
            }),
            Ok(())
        );
        assert_eq!(with(|b| b.operation = IdempotentWrite), Ok(()));
        assert_eq!(with(|b| b.host = "client.example.com".into()), Ok(()));
        assert_eq!(with(|b| b.principal = "Group:ops".into()), Ok(()));
        assert_eq!(with(|b| b.resource_type = User), Ok(()));
        assert_eq!(with(|b| b.resource_type = DelegationToken), Ok(()));
        assert_eq!(with(|b| b.pattern_type = Prefixed), Ok(()));
        assert_eq!(
            with(|b| {
                b.resource_type = Cluster;
                b.resource_name = CLUSTER_RESOURCE_NAME.into();
                b.operation = All;
                b.permission = Deny;
            }),
            Ok(())
        );
        // Refused.
        type Change = fn(&mut AclBinding);
        let refused: [(Change, &str); 9] = [
            (|b| b.resource_name.clear(), "Invalid empty resource name"),
            (
                |b| {
                    b.resource_type = Cluster;
                    b.resource_name.clear();
                },
                "The only valid name for the CLUSTER resource is kafka-cluster",
            ),
            (|b| b.resource_type = ResourceType::Any, "Invalid resourceType ANY"),
            (|b| b.pattern_type = PatternType::Any, "Invalid patternType ANY"),
            (|b| b.pattern_type = Match, "Invalid patternType MATCH"),
            (|b| b.operation = AclOperation::Any, "Invalid operation ANY"),
            (
                |b| b.permission = PermissionType::Any,
                "Invalid permissionType ANY",
            ),
            (
                |b| b.principal = "alice".into(),
                "Could not parse principal from `alice` (no colon is present separating the principal type from the principal name)",
            ),
            (
                |b| b.host.clear(),
                "the host of an ACL must not be empty (use * for any host)",
            ),
        ];
        for (change, message) in refused {
            assert_eq!(with(change).map_err(|e| e.to_string()), Err(message.into()));
        }
    }

    /// Kafka's `authorizeByResourceType`: super users and `allow.everyone.if.no.acl.found` through the
    /// `hardcode` probe, then the patterns of the requester's ACLs for exactly that operation.
    #[test]
    fn authorize_any_follows_kafka() {
        let closed = on();
        let open = Authorizer {
            allow_if_no_acl: true,
            ..on()
        };
        // No ACLs at all: refused by default, allowed with allow.everyone.if.no.acl.found.
        assert!(!closed.authorize_any([], who("User:bob"), Write, Topic));
        assert!(open.authorize_any([], who("User:bob"), Write, Topic));
        // ACLs on other topics leave the probe's resource without ACLs: still open.
        let others = [acl(Topic, "t", Literal, "User:alice", Write, Allow)];
        assert!(open.authorize_any(&others, who("User:bob"), Write, Topic));
        assert!(!closed.authorize_any(&others, who("User:bob"), Write, Topic));
        // An ACL on every topic covers the probe's resource too: no default for bob.
        let everywhere = [acl(Topic, "*", Literal, "User:alice", Write, Allow)];
        assert!(!open.authorize_any(&everywhere, who("User:bob"), Write, Topic));
        assert!(closed.authorize_any(&everywhere, who("User:alice"), Write, Topic));
        // A DENY on every topic wins over allows, but not over a super user.
        let denied = [
            acl(Topic, "t", Prefixed, "User:alice", Write, Allow),
            acl(Topic, "*", Literal, "User:*", All, Deny),
        ];
        assert!(!open.authorize_any(&denied, who("User:alice"), Write, Topic));
        assert!(closed.authorize_any(&denied, who("User:admin"), Write, Topic));
        // A LITERAL DENY cancels the LITERAL ALLOW of the same name only.
        let partly = [
            acl(Topic, "a", Literal, "User:alice", Write, Allow),
            acl(Topic, "a", Literal, "User:alice", Write, Deny),
        ];
        assert!(!closed.authorize_any(&partly, who("User:alice"), Write, Topic));
        let mut more = partly.to_vec();
        more.push(acl(Topic, "b", Literal, "User:alice", Write, Allow));
        assert!(closed.authorize_any(&more, who("User:alice"), Write, Topic));
        // Only the operation itself or ALL counts, not operations that imply it.
        let read = [acl(Topic, "t", Literal, "User:alice", Read, Allow)];
        assert!(!closed.authorize_any(&read, who("User:alice"), Describe, Topic));
        let all = [acl(Topic, "t", Literal, "User:alice", All, Allow)];
        assert!(closed.authorize_any(&all, who("User:alice"), Write, Topic));
    }

    #[test]
    fn authorized_operations_bits() {
        let acls = [acl(Group, "app", Literal, "User:alice", Read, Allow)];
        let bits = on().authorized_operations(&acls, who("User:alice"), Group, "app");
        assert_eq!(bits, (1 << Read.code()) | (1 << Describe.code()));
    }
}
