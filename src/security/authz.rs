//! The authorization checks of one request: the [`Authorizer`](super::acl::Authorizer) of the broker
//! applied to the request's principal and address, with the ACLs of the newest metadata image.

use std::sync::Arc;

use super::acl::{AclOperation, Requester, ResourceType, CLUSTER_RESOURCE_NAME};
use crate::dispatch::RequestContext;
use crate::metadata::MetadataImage;
use crate::server::Broker;

/// Checks for one request. Cheap to make: without an authorizer it allows everything and reads nothing.
pub struct Authz<'a> {
    broker: &'a Broker,
    requester: Requester<'a>,
    /// The ACLs decided on, taken once so that one request sees one set.
    image: Option<Arc<MetadataImage>>,
}

impl<'a> Authz<'a> {
    pub fn new(broker: &'a Broker, ctx: &'a RequestContext<'_>) -> Authz<'a> {
        Authz {
            broker,
            requester: Requester {
                principal: &ctx.connection.principal,
                host: ctx.connection.peer.ip(),
            },
            image: broker.authorizer.enabled.then(|| broker.controller.image()),
        }
    }

    /// Whether the request may perform `operation` on the resource; a refusal is logged (Kafka's
    /// authorizer log), since it answers the question "why can't my client do X".
    pub fn allows(&self, operation: AclOperation, resource_type: ResourceType, name: &str) -> bool {
        let allowed = self.check(operation, resource_type, name);
        if !allowed {
            self.log_denied(operation, resource_type, name);
        }
        allowed
    }

    /// Whether an idempotent producer without a transactional id may write: IDEMPOTENT_WRITE on the
    /// cluster, or WRITE on at least one topic (Kafka 3.0, KIP-679). Most producers only have the
    /// latter, so the cluster check is one step of the decision, not a refusal: it stays quiet, as
    /// Kafka's `logIfDenied = false` makes it, or every Produce request of such a producer would log a
    /// denial. Only a refusal of both is logged.
    pub fn allows_idempotent_write(&self) -> bool {
        let allowed = self.check(
            AclOperation::IdempotentWrite,
            ResourceType::Cluster,
            CLUSTER_RESOURCE_NAME,
        ) || self.allows_any(AclOperation::Write, ResourceType::Topic);
        if !allowed {
            self.log_denied(
                AclOperation::IdempotentWrite,
                ResourceType::Cluster,
                CLUSTER_RESOURCE_NAME,
            );
        }
        allowed
    }

    fn log_denied(&self, operation: AclOperation, resource_type: ResourceType, name: &str) {
        tracing::info!(
            principal = %self.requester.principal,
            host = %self.requester.host,
            operation = %operation,
            resource_type = %resource_type,
            resource = %name,
            "authorization denied"
        );
    }

    /// As [`Authz::allows`] without the log line: for filtering what a listing shows, and for checks
    /// whose "no" is not a refusal of the request.
    pub fn can_see(
        &self,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        self.check(operation, resource_type, name)
    }

    /// An operation on the cluster resource.
    pub fn allows_cluster(&self, operation: AclOperation) -> bool {
        self.allows(operation, ResourceType::Cluster, CLUSTER_RESOURCE_NAME)
    }

    /// Whether the operation is allowed on at least one resource of the type (Kafka's
    /// `authorizeByResourceType`).
    pub fn allows_any(&self, operation: AclOperation, resource_type: ResourceType) -> bool {
        match &self.image {
            None => true,
            Some(image) => self.broker.authorizer.authorize_any(
                image.acls.values(),
                self.requester,
                operation,
                resource_type,
            ),
        }
    }

    /// Kafka's `*_authorized_operations` bit field for one resource.
    pub fn operations(&self, resource_type: ResourceType, name: &str) -> i32 {
        match &self.image {
            None => AclOperation::applicable_to(resource_type)
                .iter()
                .fold(0, |bits, op| bits | (1 << op.code())),
            Some(image) => self.broker.authorizer.authorized_operations(
                image.acls.values(),
                self.requester,
                resource_type,
                name,
            ),
        }
    }

    /// Kafka's `cluster_authorized_operations` (Metadata, DescribeCluster): none without DESCRIBE on the
    /// cluster, else every operation allowed on it. The DESCRIBE check refuses nothing, so it is quiet.
    pub fn cluster_authorized_operations(&self) -> i32 {
        if self.check(
            AclOperation::Describe,
            ResourceType::Cluster,
            CLUSTER_RESOURCE_NAME,
        ) {
            self.operations(ResourceType::Cluster, CLUSTER_RESOURCE_NAME)
        } else {
            0
        }
    }

    fn check(&self, operation: AclOperation, resource_type: ResourceType, name: &str) -> bool {
        match &self.image {
            None => true,
            Some(image) => self.broker.authorizer.authorize(
                image.acls.values(),
                self.requester,
                operation,
                resource_type,
                name,
            ),
        }
    }
}
