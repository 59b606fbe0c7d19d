//! Controller decisions on security metadata: access control entries (CreateAcls, DeleteAcls).

use uuid::Uuid;

use super::controller::{Controller, ControllerError};
use super::records::MetadataRecord;
use crate::security::acl::{AclBinding, AclError, AclFilter};

impl Controller {
    /// Stores the valid bindings of one CreateAcls request in one commit. A binding already stored is
    /// accepted without a second copy, as Kafka does; an invalid one gets its own error and does not stop
    /// the others.
    pub fn create_acls(
        &self,
        bindings: Vec<AclBinding>,
    ) -> Result<Vec<Result<(), AclError>>, ControllerError> {
        let _deciding = self.lock();
        let image = self.journal.image_for_update()?;
        let mut records = Vec::new();
        let mut added: Vec<AclBinding> = Vec::new();
        let results = bindings
            .into_iter()
            .map(|acl| {
                acl.validate()?;
                if !image.acls.values().any(|a| *a == acl) && !added.contains(&acl) {
                    tracing::info!(acl = ?acl, "ACL created");
                    added.push(acl.clone());
                    records.push(MetadataRecord::AccessControlEntry {
                        id: Uuid::new_v4(),
                        acl,
                    });
                }
                Ok(())
            })
            .collect();
        if !records.is_empty() {
            self.journal.commit(records)?;
        }
        Ok(results)
    }

    /// Deletes every stored binding each filter matches, in one commit, and returns what each filter
    /// deleted (a binding matched by two filters is reported for both, as Kafka does).
    pub fn delete_acls(
        &self,
        filters: &[AclFilter],
    ) -> Result<Vec<Vec<AclBinding>>, ControllerError> {
        let _deciding = self.lock();
        let image = self.journal.image_for_update()?;
        let mut removed = std::collections::BTreeSet::new();
        let deleted = filters
            .iter()
            .map(|filter| {
                image
                    .acls
                    .iter()
                    .filter(|(_, acl)| filter.matches(acl))
                    .map(|(id, acl)| {
                        removed.insert(*id);
                        acl.clone()
                    })
                    .collect()
            })
            .collect();
        if !removed.is_empty() {
            tracing::info!(count = removed.len(), "ACLs deleted");
            self.journal.commit(
                removed
                    .into_iter()
                    .map(|id| MetadataRecord::RemoveAccessControlEntry { id })
                    .collect(),
            )?;
        }
        Ok(deleted)
    }
}

/// One credential change of an AlterUserScramCredentials request.
#[derive(Debug, Clone)]
pub enum ScramChange {
    Delete {
        user: String,
        mechanism: i8,
    },
    Upsert {
        user: String,
        mechanism: i8,
        iterations: i32,
        salt: Vec<u8>,
        salted_password: Vec<u8>,
    },
}

impl ScramChange {
    fn user(&self) -> &str {
        match self {
            ScramChange::Delete { user, .. } | ScramChange::Upsert { user, .. } => user,
        }
    }

    fn mechanism(&self) -> i8 {
        match self {
            ScramChange::Delete { mechanism, .. } | ScramChange::Upsert { mechanism, .. } => {
                *mechanism
            }
        }
    }
}

/// The outcome for one user: Kafka answers per user, and a user's changes apply all or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramUserResult {
    pub user: String,
    pub error: Option<(i16, String)>,
}

impl Controller {
    /// Applies the SCRAM credential changes of one AlterUserScramCredentials request with Kafka's checks
    /// (ScramControlManager): per user, every change must be valid for any of them to apply.
    pub fn alter_user_scram_credentials(
        &self,
        changes: Vec<ScramChange>,
    ) -> Result<Vec<ScramUserResult>, ControllerError> {
        use kafka_protocol::error::ResponseError;
        use kavka_sasl::{ScramCredential, ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS};
        let _deciding = self.lock();
        let image = self.journal.image_for_update()?;
        let mut users: Vec<&str> = Vec::new();
        for change in &changes {
            if !users.contains(&change.user()) {
                users.push(change.user());
            }
        }
        let mut records = Vec::new();
        let mut results = Vec::new();
        for user in users {
            let mine: Vec<&ScramChange> = changes.iter().filter(|c| c.user() == user).collect();
            let check = |change: &ScramChange| -> Result<MetadataRecord, (ResponseError, String)> {
                let unacceptable = |m: &str| (ResponseError::UnacceptableCredential, m.to_string());
                if user.is_empty() {
                    return Err(unacceptable("Username must not be empty"));
                }
                let Some(mechanism) = ScramMechanism::from_kafka_type(change.mechanism()) else {
                    return Err((
                        ResponseError::UnsupportedSaslMechanism,
                        "Unknown SCRAM mechanism".into(),
                    ));
                };
                if mine
                    .iter()
                    .filter(|c| c.mechanism() == change.mechanism())
                    .count()
                    > 1
                {
                    return Err((
                        ResponseError::DuplicateResource,
                        "A user credential cannot be altered twice in the same request".into(),
                    ));
                }
                match change {
                    ScramChange::Delete { .. } => {
                        let exists = image
                            .scram_credentials
                            .get(user)
                            .is_some_and(|m| m.contains_key(&mechanism));
                        if !exists {
                            return Err((
                                ResponseError::ResourceNotFound,
                                "Attempt to delete a user credential that does not exist".into(),
                            ));
                        }
                        Ok(MetadataRecord::RemoveUserScramCredential {
                            name: user.to_string(),
                            mechanism,
                        })
                    }
                    ScramChange::Upsert {
                        iterations,
                        salt,
                        salted_password,
                        ..
                    } => {
                        if *iterations < MIN_ITERATIONS {
                            return Err(unacceptable("Too few iterations"));
                        }
                        if *iterations > MAX_ITERATIONS {
                            return Err(unacceptable("Too many iterations"));
                        }
                        if salt.is_empty() || salted_password.is_empty() {
                            return Err(unacceptable("Salt and salted password must not be empty"));
                        }
                        Ok(MetadataRecord::UserScramCredential {
                            name: user.to_string(),
                            mechanism,
                            credential: ScramCredential::from_salted_password(
                                mechanism,
                                salt,
                                salted_password,
                                *iterations,
                            ),
                        })
                    }
                }
            };
            match mine.iter().map(|c| check(c)).collect::<Result<Vec<_>, _>>() {
                Ok(user_records) => {
                    tracing::info!(user = %user, changes = user_records.len(), "SCRAM credentials altered");
                    records.extend(user_records);
                    results.push(ScramUserResult {
                        user: user.to_string(),
                        error: None,
                    });
                }
                Err((error, message)) => results.push(ScramUserResult {
                    user: user.to_string(),
                    error: Some((error.code(), message)),
                }),
            }
        }
        if !records.is_empty() {
            self.journal.commit(records)?;
        }
        Ok(results)
    }
}

impl Controller {
    /// Writes the `kavka storage format --add-scram` credentials into the log, once per cluster: run by
    /// the active controller. A user already in the log keeps the credential it has there.
    pub fn apply_scram_bootstrap(
        &self,
        credentials: &[crate::security::scram_bootstrap::BootstrapScram],
    ) -> Result<(), ControllerError> {
        if credentials.is_empty() || self.image().scram_bootstrap_applied {
            return Ok(());
        }
        let _deciding = self.lock();
        let image = self.journal.image_for_update()?;
        if image.scram_bootstrap_applied {
            return Ok(());
        }
        let mut records: Vec<MetadataRecord> = credentials
            .iter()
            .filter(|c| {
                !image
                    .scram_credentials
                    .get(&c.name)
                    .is_some_and(|m| m.contains_key(&c.mechanism))
            })
            .map(|c| MetadataRecord::UserScramCredential {
                name: c.name.clone(),
                mechanism: c.mechanism,
                credential: c.credential.clone(),
            })
            .collect();
        tracing::info!(
            count = records.len(),
            "SCRAM credentials of kavka storage format --add-scram written"
        );
        records.push(MetadataRecord::ScramBootstrapApplied);
        self.journal.commit(records)?;
        Ok(())
    }
}
