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
            tracing::info!(
                principal = %self.requester.principal,
                host = %self.requester.host,
                operation = %operation,
                resource_type = %resource_type,
                resource = %name,
                "authorization denied"
            );
        }
        allowed
    }

    /// As [`Authz::allows`] without the log line: for filtering what a listing shows.
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
