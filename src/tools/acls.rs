//! `kavka acls`: Kafka's `kafka-acls` (CreateAcls, DescribeAcls, DeleteAcls), with its options, its
//! defaults and its output (`Adding ACLs for resource ...`, `Current ACLs for resource ...`).
//!
//! Kavka never prompts: `--remove` without `--force` removes as Kafka's tool does after a "y" answer.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;

use super::AdminConnection;
use crate::client::{ClientError, KafkaClient};

/// Kafka's name of the cluster resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// The Kafka error code SECURITY_DISABLED (no authorizer configured).
const SECURITY_DISABLED: i16 = 54;

// Wire codes of Kafka's ResourceType, PatternType, AclOperation and AclPermissionType.
pub const RESOURCE_ANY: i8 = 1;
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_GROUP: i8 = 3;
pub const RESOURCE_CLUSTER: i8 = 4;
pub const RESOURCE_TRANSACTIONAL_ID: i8 = 5;
pub const PATTERN_ANY: i8 = 1;
pub const PATTERN_MATCH: i8 = 2;
pub const PATTERN_LITERAL: i8 = 3;
pub const PATTERN_PREFIXED: i8 = 4;
pub const OP_ANY: i8 = 1;
pub const OP_ALL: i8 = 2;
pub const OP_READ: i8 = 3;
pub const OP_WRITE: i8 = 4;
pub const OP_CREATE: i8 = 5;
pub const OP_DESCRIBE: i8 = 8;
pub const OP_IDEMPOTENT_WRITE: i8 = 12;
pub const PERMISSION_ANY: i8 = 1;
pub const PERMISSION_DENY: i8 = 2;
pub const PERMISSION_ALLOW: i8 = 3;

/// Kafka's operations: wire code, enum name (as printed), the tool's name (as --operation takes it).
const OPERATIONS: &[(i8, &str, &str)] = &[
    (2, "ALL", "All"),
    (3, "READ", "Read"),
    (4, "WRITE", "Write"),
    (5, "CREATE", "Create"),
    (6, "DELETE", "Delete"),
    (7, "ALTER", "Alter"),
    (8, "DESCRIBE", "Describe"),
    (9, "CLUSTER_ACTION", "ClusterAction"),
    (10, "DESCRIBE_CONFIGS", "DescribeConfigs"),
    (11, "ALTER_CONFIGS", "AlterConfigs"),
    (12, "IDEMPOTENT_WRITE", "IdempotentWrite"),
    (13, "CREATE_TOKENS", "CreateTokens"),
    (14, "DESCRIBE_TOKENS", "DescribeTokens"),
    (15, "TWO_PHASE_COMMIT", "TwoPhaseCommit"),
];

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["add", "remove", "list"])))]
pub struct AclsArgs {
    #[command(flatten)]
    pub connection: AdminConnection,
    /// Add ACLs (for the resources given, from --allow-principal / --deny-principal).
    #[arg(long)]
    pub add: bool,
    /// Remove ACLs (those of the principals and operations given; all of the resource without any).
    #[arg(long)]
    pub remove: bool,
    /// List ACLs (of the resources given, else of every resource).
    #[arg(long)]
    pub list: bool,
    /// A principal allowed, as Type:name (User:alice; User:* for every user); repeatable.
    #[arg(long = "allow-principal", value_name = "PRINCIPAL", value_parser = parse_principal)]
    pub allow_principals: Vec<String>,
    /// A principal denied, as Type:name; deny rules take precedence over allow rules; repeatable.
    #[arg(long = "deny-principal", value_name = "PRINCIPAL", value_parser = parse_principal)]
    pub deny_principals: Vec<String>,
    /// Host the --allow-principal principals are allowed from (repeatable; default * = every host).
    #[arg(long = "allow-host", value_name = "HOST")]
    pub allow_hosts: Vec<String>,
    /// Host the --deny-principal principals are denied from (repeatable; default * = every host).
    #[arg(long = "deny-host", value_name = "HOST")]
    pub deny_hosts: Vec<String>,
    /// Operation allowed or denied, case-insensitive (repeatable; default All): Read, Write, Create, Delete, Alter, Describe, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite, CreateTokens, DescribeTokens, TwoPhaseCommit, All.
    #[arg(long = "operation", value_name = "OPERATION", value_parser = parse_operation)]
    pub operations: Vec<i8>,
    /// Topic the ACLs are for (* = every topic); repeatable.
    #[arg(long = "topic", value_name = "TOPIC")]
    pub topics: Vec<String>,
    /// Consumer group the ACLs are for (* = every group); repeatable.
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// The ACLs are for the cluster resource (kafka-cluster).
    #[arg(long)]
    pub cluster: bool,
    /// Transactional id the ACLs are for (* = every transactional id); repeatable.
    #[arg(long = "transactional-id", value_name = "ID")]
    pub transactional_ids: Vec<String>,
    /// Pattern type: literal or prefixed for --add; also any (any pattern type, exact name) or match (every ACL that applies to the name) for --list and --remove.
    #[arg(long, value_name = "TYPE", value_parser = parse_pattern_type, default_value = "literal")]
    pub resource_pattern_type: i8,
    /// With --list: only the ACLs of this principal (Type:name); repeatable.
    #[arg(long = "principal", value_name = "PRINCIPAL", value_parser = parse_principal)]
    pub principals: Vec<String>,
    /// Do not ask for confirmation (accepted for Kafka compatibility: kavka never prompts).
    #[arg(long)]
    pub force: bool,
    /// Convenience: the producer's ACLs (Write, Describe, Create on --topic; Write, Describe on --transactional-id).
    #[arg(long)]
    pub producer: bool,
    /// Convenience: the consumer's ACLs (Read, Describe on --topic; Read on --group).
    #[arg(long)]
    pub consumer: bool,
    /// With --producer: also IdempotentWrite on the cluster.
    #[arg(long)]
    pub idempotent: bool,
}

/// A resource pattern (or, with pattern type any/match, a resource pattern filter).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourcePattern {
    pub resource_type: i8,
    pub name: String,
    pub pattern_type: i8,
}

impl fmt::Display for ResourcePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ResourcePattern(resourceType={}, name={}, patternType={})",
            resource_type_name(self.resource_type),
            self.name,
            pattern_type_name(self.pattern_type)
        )
    }
}

/// One access control entry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccessControlEntry {
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission_type: i8,
}

impl fmt::Display for AccessControlEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "(principal={}, host={}, operation={}, permissionType={})",
            self.principal,
            self.host,
            operation_name(self.operation),
            permission_type_name(self.permission_type)
        )
    }
}

pub fn resource_type_name(code: i8) -> &'static str {
    match code {
        1 => "ANY",
        2 => "TOPIC",
        3 => "GROUP",
        4 => "CLUSTER",
        5 => "TRANSACTIONAL_ID",
        6 => "DELEGATION_TOKEN",
        7 => "USER",
        _ => "UNKNOWN",
    }
}

pub fn pattern_type_name(code: i8) -> &'static str {
    match code {
        1 => "ANY",
        2 => "MATCH",
        3 => "LITERAL",
        4 => "PREFIXED",
        _ => "UNKNOWN",
    }
}

pub fn operation_name(code: i8) -> &'static str {
    if code == OP_ANY {
        return "ANY";
    }
    OPERATIONS
        .iter()
        .find(|(c, _, _)| *c == code)
        .map(|(_, name, _)| *name)
        .unwrap_or("UNKNOWN")
}

pub fn permission_type_name(code: i8) -> &'static str {
    match code {
        1 => "ANY",
        2 => "DENY",
        3 => "ALLOW",
        _ => "UNKNOWN",
    }
}

/// `--operation`: Kafka's tool names (ClusterAction) or enum names (CLUSTER_ACTION), any case.
pub fn parse_operation(text: &str) -> Result<i8, String> {
    let wanted: String = text
        .trim()
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .collect::<String>()
        .to_ascii_lowercase();
    OPERATIONS
        .iter()
        .find(|(_, _, tool)| tool.to_ascii_lowercase() == wanted)
        .map(|(code, _, _)| *code)
        .ok_or_else(|| {
            let names: Vec<&str> = OPERATIONS.iter().map(|(_, _, tool)| *tool).collect();
            format!("unknown operation {text:?} (valid: {})", names.join(", "))
        })
}

/// `--resource-pattern-type`: literal, prefixed, any or match, any case.
pub fn parse_pattern_type(text: &str) -> Result<i8, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "literal" => Ok(PATTERN_LITERAL),
        "prefixed" => Ok(PATTERN_PREFIXED),
        "any" => Ok(PATTERN_ANY),
        "match" => Ok(PATTERN_MATCH),
        _ => Err(format!(
            "unknown resource-pattern-type {text:?} (valid: literal, prefixed, any, match)"
        )),
    }
}

/// A principal as Kafka's tools take it: `Type:name` (split at the first colon), trimmed.
pub fn parse_principal(text: &str) -> Result<String, String> {
    let text = text.trim();
    match text.split_once(':') {
        Some((kind, name)) if !kind.is_empty() => Ok(format!("{kind}:{name}")),
        _ => Err(format!(
            "expected a string in format principalType:principalName but got {text}"
        )),
    }
}

/// The operations Kafka accepts on a resource type (besides All).
fn supported_operations(resource_type: i8) -> &'static [i8] {
    match resource_type {
        RESOURCE_TOPIC => &[3, 4, 5, 8, 6, 7, 10, 11],
        RESOURCE_GROUP => &[3, 8, 6, 10, 11],
        RESOURCE_CLUSTER => &[5, 9, 10, 11, 12, 7, 8],
        RESOURCE_TRANSACTIONAL_ID => &[8, 4, 15],
        6 => &[8],
        7 => &[13, 14],
        _ => &[],
    }
}

/// The resources (filters) the options name, as Kafka's `getResourceFilter`: the cluster only with a
/// literal pattern type.
pub fn resources(args: &AclsArgs) -> Vec<ResourcePattern> {
    let pattern_type = args.resource_pattern_type;
    let mut out = BTreeSet::new();
    let mut add = |resource_type: i8, name: &str| {
        out.insert(ResourcePattern {
            resource_type,
            name: name.to_string(),
            pattern_type,
        });
    };
    for t in &args.topics {
        add(RESOURCE_TOPIC, t.trim());
    }
    if pattern_type == PATTERN_LITERAL && (args.cluster || args.idempotent) {
        add(RESOURCE_CLUSTER, CLUSTER_NAME);
    }
    for g in &args.groups {
        add(RESOURCE_GROUP, g.trim());
    }
    for x in &args.transactional_ids {
        add(RESOURCE_TRANSACTIONAL_ID, x);
    }
    out.into_iter().collect()
}

/// The entries the principal and host options give for `operations`: allowed principals x operations x
/// allow hosts, then the same for denied ones; a host list defaults to `*` when principals are given.
pub fn entries(args: &AclsArgs, operations: &[i8]) -> BTreeSet<AccessControlEntry> {
    let mut out = BTreeSet::new();
    let mut one = |principals: &[String], hosts: &[String], permission_type: i8| {
        let hosts: Vec<String> = if hosts.is_empty() {
            vec!["*".to_string()]
        } else {
            hosts.iter().map(|h| h.trim().to_string()).collect()
        };
        for principal in principals {
            for &operation in operations {
                for host in &hosts {
                    out.insert(AccessControlEntry {
                        principal: principal.clone(),
                        host: host.clone(),
                        operation,
                        permission_type,
                    });
                }
            }
        }
    };
    one(&args.allow_principals, &args.allow_hosts, PERMISSION_ALLOW);
    one(&args.deny_principals, &args.deny_hosts, PERMISSION_DENY);
    out
}

/// Each resource (filter) with the entries to add or remove, as Kafka's `getResourceFilterToAcls`: from
/// --operation, or the --producer / --consumer sets; checked against the operations each type supports.
pub fn resource_entries(
    args: &AclsArgs,
) -> Result<BTreeMap<ResourcePattern, BTreeSet<AccessControlEntry>>, ClientError> {
    let filters = resources(args);
    if filters.is_empty() {
        return Err(ClientError::Config(
            "You must provide at least one resource: --topic <topic> or --cluster or --group <group> or --transactional-id <id>".into(),
        ));
    }
    let mut out: BTreeMap<ResourcePattern, BTreeSet<AccessControlEntry>> = BTreeMap::new();
    if !args.producer && !args.consumer {
        let operations = if args.operations.is_empty() {
            vec![OP_ALL]
        } else {
            args.operations.clone()
        };
        let acls = entries(args, &operations);
        for f in &filters {
            out.insert(f.clone(), acls.clone());
        }
    }
    if args.producer {
        for f in &filters {
            match f.resource_type {
                RESOURCE_TOPIC => {
                    out.insert(
                        f.clone(),
                        entries(args, &[OP_WRITE, OP_DESCRIBE, OP_CREATE]),
                    );
                }
                RESOURCE_TRANSACTIONAL_ID => {
                    out.insert(f.clone(), entries(args, &[OP_WRITE, OP_DESCRIBE]));
                }
                _ => {}
            }
        }
        if args.idempotent {
            let cluster = ResourcePattern {
                resource_type: RESOURCE_CLUSTER,
                name: CLUSTER_NAME.to_string(),
                pattern_type: PATTERN_LITERAL,
            };
            out.insert(cluster, entries(args, &[OP_IDEMPOTENT_WRITE]));
        }
    }
    if args.consumer {
        for f in &filters {
            let ops: &[i8] = match f.resource_type {
                RESOURCE_TOPIC => &[OP_READ, OP_DESCRIBE],
                RESOURCE_GROUP => &[OP_READ],
                _ => continue,
            };
            out.entry(f.clone()).or_default().extend(entries(args, ops));
        }
    }
    for (resource, acls) in &out {
        let supported = supported_operations(resource.resource_type);
        let bad = acls
            .iter()
            .any(|a| a.operation != OP_ALL && !supported.contains(&a.operation));
        if bad {
            let mut names: Vec<&str> = supported.iter().map(|o| operation_name(*o)).collect();
            names.push("ALL");
            return Err(ClientError::Config(format!(
                "ResourceType {} only supports operations {}",
                resource_type_name(resource.resource_type),
                names.join(", ")
            )));
        }
    }
    Ok(out)
}

/// Kafka's option checks (`AclCommandOptions.checkArgs`).
pub fn check_args(args: &AclsArgs) -> Result<(), ClientError> {
    let fail = |m: &str| Err(ClientError::Config(m.to_string()));
    if args.list
        && (args.producer
            || args.consumer
            || !args.allow_hosts.is_empty()
            || !args.allow_principals.is_empty()
            || !args.deny_hosts.is_empty()
            || !args.deny_principals.is_empty())
    {
        return fail("--list cannot be used with --producer, --consumer, --allow-host, --allow-principal, --deny-host or --deny-principal");
    }
    if (args.producer || args.consumer)
        && (!args.operations.is_empty()
            || !args.deny_principals.is_empty()
            || !args.deny_hosts.is_empty())
    {
        return fail("--producer and --consumer cannot be used with --operation, --deny-principal or --deny-host");
    }
    if !args.principals.is_empty() && !args.list {
        return fail("The --principal option is only available if --list is set");
    }
    if args.producer && args.topics.is_empty() {
        return fail("With --producer you must specify a --topic");
    }
    if args.idempotent && !args.producer {
        return fail("The --idempotent option is only available if --producer is set");
    }
    if args.consumer
        && (args.topics.is_empty()
            || args.groups.is_empty()
            || (!args.producer && (args.cluster || !args.transactional_ids.is_empty())))
    {
        return fail("With --consumer you must specify a --topic and a --group and no --cluster or --transactional-id option should be specified.");
    }
    Ok(())
}

pub async fn run(args: AclsArgs) -> Result<(), ClientError> {
    check_args(&args)?;
    if args.add {
        if !matches!(
            args.resource_pattern_type,
            PATTERN_LITERAL | PATTERN_PREFIXED
        ) {
            return Err(ClientError::Config(format!(
                "A '--resource-pattern-type' value of '{}' is not valid when adding acls.",
                pattern_type_name(args.resource_pattern_type)
            )));
        }
        let to_add = resource_entries(&args)?;
        if to_add.values().any(BTreeSet::is_empty) {
            return Err(ClientError::Config(
                "You must specify one of: --allow-principal, --deny-principal when trying to add ACLs.".into(),
            ));
        }
        let mut client = args.connection.connect("kavka-acls").await?;
        add(&mut client, &to_add).await
    } else if args.remove {
        let to_remove = resource_entries(&args)?;
        let mut client = args.connection.connect("kavka-acls").await?;
        remove(&mut client, &to_remove).await
    } else {
        let filters = resources(&args);
        let mut client = args.connection.connect("kavka-acls").await?;
        list(&mut client, &filters, &args.principals).await
    }
}

/// Kafka's error for a response error code, with SECURITY_DISABLED spelled as its tools' users know it.
fn acl_error(context: &str, code: i16, message: Option<&str>) -> ClientError {
    if code == SECURITY_DISABLED {
        ClientError::Failed(format!(
            "{context}: no authorizer is configured (SECURITY_DISABLED)"
        ))
    } else {
        ClientError::kafka(context, code, message)
    }
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// DescribeAcls for one filter (`None`: every ACL), grouped by resource.
async fn describe(
    client: &mut KafkaClient,
    filter: Option<&ResourcePattern>,
    context: &str,
) -> Result<BTreeMap<ResourcePattern, BTreeSet<AccessControlEntry>>, ClientError> {
    let request = DescribeAclsRequest::default()
        .with_resource_type_filter(filter.map_or(RESOURCE_ANY, |f| f.resource_type))
        .with_resource_name_filter(filter.map(|f| str_bytes(&f.name)))
        .with_pattern_type_filter(filter.map_or(PATTERN_ANY, |f| f.pattern_type))
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(OP_ANY)
        .with_permission_type(PERMISSION_ANY);
    let response = client.send_any(&request).await?;
    if response.error_code != 0 {
        return Err(acl_error(
            context,
            response.error_code,
            response.error_message.as_deref(),
        ));
    }
    let mut out: BTreeMap<ResourcePattern, BTreeSet<AccessControlEntry>> = BTreeMap::new();
    for resource in response.resources {
        let pattern = ResourcePattern {
            resource_type: resource.resource_type,
            name: resource.resource_name.to_string(),
            pattern_type: resource.pattern_type,
        };
        let acls = out.entry(pattern).or_default();
        for acl in resource.acls {
            acls.insert(AccessControlEntry {
                principal: acl.principal.to_string(),
                host: acl.host.to_string(),
                operation: acl.operation,
                permission_type: acl.permission_type,
            });
        }
    }
    Ok(out)
}

/// Kafka's `Adding ACLs for resource ...` block.
pub fn adding_text(resource: &ResourcePattern, acls: &[&AccessControlEntry]) -> String {
    let lines: Vec<String> = acls.iter().map(|a| format!("\t{a}")).collect();
    format!(
        "Adding ACLs for resource `{resource}`: \n {}\n",
        lines.join("\n")
    )
}

/// Kafka's `Current ACLs for resource ...` block.
pub fn current_text(resource: &ResourcePattern, acls: &BTreeSet<AccessControlEntry>) -> String {
    let lines: Vec<String> = acls.iter().map(|a| format!("\t{a}")).collect();
    format!(
        "Current ACLs for resource `{resource}`:\n{}\n",
        lines.join("\n")
    )
}

async fn add(
    client: &mut KafkaClient,
    to_add: &BTreeMap<ResourcePattern, BTreeSet<AccessControlEntry>>,
) -> Result<(), ClientError> {
    for (resource, acls) in to_add {
        let existing = describe(client, Some(resource), "adding ACLs").await?;
        let existing = existing.get(resource);
        let mut new = Vec::new();
        for acl in acls {
            if existing.is_some_and(|e| e.contains(acl)) {
                println!("Acl (pattern={resource}, entry={acl}) already exists.");
            } else {
                new.push(acl);
            }
        }
        if new.is_empty() {
            continue;
        }
        println!("{}", adding_text(resource, &new));
        let creations = new
            .iter()
            .map(|acl| {
                AclCreation::default()
                    .with_resource_type(resource.resource_type)
                    .with_resource_name(str_bytes(&resource.name))
                    .with_resource_pattern_type(resource.pattern_type)
                    .with_principal(str_bytes(&acl.principal))
                    .with_host(str_bytes(&acl.host))
                    .with_operation(acl.operation)
                    .with_permission_type(acl.permission_type)
            })
            .collect();
        let response = client
            .send_any(&CreateAclsRequest::default().with_creations(creations))
            .await?;
        for (result, acl) in response.results.iter().zip(&new) {
            if result.error_code != 0 {
                return Err(acl_error(
                    &format!("adding ACL {acl} for `{resource}`"),
                    result.error_code,
                    result.error_message.as_deref(),
                ));
            }
        }
    }
    Ok(())
}

async fn remove(
    client: &mut KafkaClient,
    to_remove: &BTreeMap<ResourcePattern, BTreeSet<AccessControlEntry>>,
) -> Result<(), ClientError> {
    for (filter, acls) in to_remove {
        let base = DeleteAclsFilter::default()
            .with_resource_type_filter(filter.resource_type)
            .with_resource_name_filter(Some(str_bytes(&filter.name)))
            .with_pattern_type_filter(filter.pattern_type);
        let filters: Vec<DeleteAclsFilter> = if acls.is_empty() {
            vec![base
                .with_principal_filter(None)
                .with_host_filter(None)
                .with_operation(OP_ANY)
                .with_permission_type(PERMISSION_ANY)]
        } else {
            acls.iter()
                .map(|acl| {
                    base.clone()
                        .with_principal_filter(Some(str_bytes(&acl.principal)))
                        .with_host_filter(Some(str_bytes(&acl.host)))
                        .with_operation(acl.operation)
                        .with_permission_type(acl.permission_type)
                })
                .collect()
        };
        let response = client
            .send_any(&DeleteAclsRequest::default().with_filters(filters))
            .await?;
        let context = || {
            format!(
                "removing ACLs of `ResourcePatternFilter(resourceType={}, name={}, patternType={})`",
                resource_type_name(filter.resource_type),
                filter.name,
                pattern_type_name(filter.pattern_type)
            )
        };
        for result in &response.filter_results {
            if result.error_code != 0 {
                return Err(acl_error(
                    &context(),
                    result.error_code,
                    result.error_message.as_deref(),
                ));
            }
            for m in &result.matching_acls {
                if m.error_code != 0 {
                    return Err(acl_error(
                        &context(),
                        m.error_code,
                        m.error_message.as_deref(),
                    ));
                }
            }
        }
    }
    Ok(())
}

async fn list(
    client: &mut KafkaClient,
    filters: &[ResourcePattern],
    principals: &[String],
) -> Result<(), ClientError> {
    let mut all: BTreeMap<ResourcePattern, BTreeSet<AccessControlEntry>> = BTreeMap::new();
    if filters.is_empty() {
        all = describe(client, None, "listing ACLs").await?;
    } else {
        for f in filters {
            for (resource, acls) in describe(client, Some(f), "listing ACLs").await? {
                all.entry(resource).or_default().extend(acls);
            }
        }
    }
    if principals.is_empty() {
        for (resource, acls) in &all {
            println!("{}", current_text(resource, acls));
        }
        return Ok(());
    }
    for principal in principals.iter().collect::<BTreeSet<_>>() {
        println!("ACLs for principal `{principal}`");
        for (resource, acls) in &all {
            let mine: BTreeSet<AccessControlEntry> = acls
                .iter()
                .filter(|a| &a.principal == principal)
                .cloned()
                .collect();
            if !mine.is_empty() {
                println!("{}", current_text(resource, &mine));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: AclsArgs,
    }

    fn parse(extra: &[&str]) -> AclsArgs {
        let mut argv = vec!["kavka-acls", "--bootstrap-server", "127.0.0.1:9092"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).expect("parses").args
    }

    #[test]
    fn operations_parse_case_insensitively() {
        assert_eq!(parse_operation("Read"), Ok(OP_READ));
        assert_eq!(parse_operation("read"), Ok(OP_READ));
        assert_eq!(parse_operation("ClusterAction"), Ok(9));
        assert_eq!(parse_operation("CLUSTER_ACTION"), Ok(9));
        assert_eq!(parse_operation("idempotentwrite"), Ok(OP_IDEMPOTENT_WRITE));
        assert_eq!(parse_operation("All"), Ok(OP_ALL));
        assert!(parse_operation("Fly")
            .unwrap_err()
            .contains("DescribeConfigs"));
        assert_eq!(operation_name(10), "DESCRIBE_CONFIGS");
    }

    #[test]
    fn principals_and_pattern_types_parse() {
        assert_eq!(parse_principal(" User:alice "), Ok("User:alice".into()));
        assert_eq!(
            parse_principal("User:CN=x,O=y:z"),
            Ok("User:CN=x,O=y:z".into())
        );
        assert!(parse_principal("alice").is_err());
        assert!(parse_principal(":alice").is_err());
        assert_eq!(parse_pattern_type("PREFIXED"), Ok(PATTERN_PREFIXED));
        assert_eq!(parse_pattern_type("match"), Ok(PATTERN_MATCH));
        assert_eq!(parse_pattern_type("Any"), Ok(PATTERN_ANY));
        assert!(parse_pattern_type("regex").is_err());
    }

    #[test]
    fn output_is_kafkas() {
        let r = ResourcePattern {
            resource_type: RESOURCE_TOPIC,
            name: "temperature".into(),
            pattern_type: PATTERN_LITERAL,
        };
        let a = AccessControlEntry {
            principal: "User:alice".into(),
            host: "*".into(),
            operation: OP_READ,
            permission_type: PERMISSION_ALLOW,
        };
        assert_eq!(
            r.to_string(),
            "ResourcePattern(resourceType=TOPIC, name=temperature, patternType=LITERAL)"
        );
        assert_eq!(
            a.to_string(),
            "(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)"
        );
        assert_eq!(
            adding_text(&r, &[&a]),
            "Adding ACLs for resource `ResourcePattern(resourceType=TOPIC, name=temperature, \
             patternType=LITERAL)`: \n \t(principal=User:alice, host=*, operation=READ, \
             permissionType=ALLOW)\n"
        );
        let set: BTreeSet<_> = [a].into_iter().collect();
        assert_eq!(
            current_text(&r, &set),
            "Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=temperature, \
             patternType=LITERAL)`:\n\t(principal=User:alice, host=*, operation=READ, \
             permissionType=ALLOW)\n"
        );
    }

    #[test]
    fn entries_multiply_principals_operations_and_hosts() {
        let args = parse(&[
            "--add",
            "--allow-principal",
            "User:alice",
            "--allow-principal",
            "User:bob",
            "--operation",
            "Read",
            "--operation",
            "describe",
            "--deny-principal",
            "User:eve",
            "--deny-host",
            "10.0.0.1",
            "--topic",
            "t",
            "--group",
            "g",
        ]);
        let map = resource_entries(&args).unwrap();
        assert_eq!(map.len(), 2);
        let topic = &map[&ResourcePattern {
            resource_type: RESOURCE_TOPIC,
            name: "t".into(),
            pattern_type: PATTERN_LITERAL,
        }];
        // 2 allowed principals x 2 operations on *, 1 denied x 2 operations on 10.0.0.1
        assert_eq!(topic.len(), 6);
        assert!(topic.iter().any(|a| a.principal == "User:eve"
            && a.host == "10.0.0.1"
            && a.permission_type == PERMISSION_DENY));
        assert!(topic
            .iter()
            .filter(|a| a.permission_type == PERMISSION_ALLOW)
            .all(|a| a.host == "*"));
    }

    #[test]
    fn defaults_and_kafka_rules() {
        // --operation defaults to All; the cluster is named kafka-cluster
        let args = parse(&["--add", "--allow-principal", "User:a", "--cluster"]);
        let map = resource_entries(&args).unwrap();
        let (r, acls) = map.iter().next().unwrap();
        assert_eq!(r.name, CLUSTER_NAME);
        assert_eq!(acls.iter().next().unwrap().operation, OP_ALL);
        // Read is not a cluster operation
        let args = parse(&[
            "--add",
            "--allow-principal",
            "User:a",
            "--operation",
            "Read",
            "--cluster",
        ]);
        let e = resource_entries(&args).unwrap_err().to_string();
        assert!(
            e.starts_with("ResourceType CLUSTER only supports operations"),
            "{e}"
        );
        // no resource
        let args = parse(&["--remove", "--allow-principal", "User:a"]);
        assert!(resource_entries(&args).is_err());
        // --remove without principals: every ACL of the resource
        let args = parse(&[
            "--remove",
            "--topic",
            "t",
            "--resource-pattern-type",
            "match",
        ]);
        let map = resource_entries(&args).unwrap();
        assert!(map.values().all(BTreeSet::is_empty));
        assert_eq!(map.keys().next().unwrap().pattern_type, PATTERN_MATCH);
        // --principal only with --list; --list without resources lists everything
        assert!(check_args(&parse(&["--add", "--principal", "User:a", "--topic", "t"])).is_err());
        let args = parse(&["--list", "--principal", "User:a"]);
        assert!(check_args(&args).is_ok() && resources(&args).is_empty());
        // the cluster is only a literal resource
        let args = parse(&["--list", "--cluster", "--resource-pattern-type", "any"]);
        assert!(resources(&args).is_empty());
    }

    #[test]
    fn producer_and_consumer_conveniences() {
        let args = parse(&[
            "--add",
            "--allow-principal",
            "User:p",
            "--producer",
            "--consumer",
            "--idempotent",
            "--topic",
            "t",
            "--group",
            "g",
            "--transactional-id",
            "tx",
        ]);
        check_args(&args).unwrap();
        let map = resource_entries(&args).unwrap();
        let ops = |rt: i8| -> BTreeSet<&str> {
            map.iter()
                .filter(|(r, _)| r.resource_type == rt)
                .flat_map(|(_, a)| a.iter().map(|a| operation_name(a.operation)))
                .collect()
        };
        assert_eq!(
            ops(RESOURCE_TOPIC),
            ["CREATE", "DESCRIBE", "READ", "WRITE"]
                .into_iter()
                .collect()
        );
        assert_eq!(ops(RESOURCE_GROUP), ["READ"].into_iter().collect());
        assert_eq!(
            ops(RESOURCE_TRANSACTIONAL_ID),
            ["DESCRIBE", "WRITE"].into_iter().collect()
        );
        assert_eq!(
            ops(RESOURCE_CLUSTER),
            ["IDEMPOTENT_WRITE"].into_iter().collect()
        );
        assert!(check_args(&parse(&["--add", "--consumer", "--topic", "t"])).is_err());
        assert!(check_args(&parse(&[
            "--add",
            "--producer",
            "--topic",
            "t",
            "--operation",
            "Read"
        ]))
        .is_err());
    }
}
