//! `kavka users`: SCRAM credentials, as Kafka's `kafka-configs --entity-type users` manages them
//! (AlterUserScramCredentials, DescribeUserScramCredentials). The password is salted here, with a random
//! salt, so it never travels to the broker.

use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;
use kavka_sasl::{random_salt, salted_password, ScramMechanism, MIN_ITERATIONS};

use super::{split_config_list, AdminConnection};
use crate::client::{ClientError, KafkaClient};

/// Kafka's default iteration count for `--add-config 'SCRAM-SHA-256=[password=...]'`.
pub const DEFAULT_ITERATIONS: i32 = 4096;
/// RESOURCE_NOT_FOUND: DescribeUserScramCredentials' answer for a user without credentials.
const RESOURCE_NOT_FOUND: i16 = 91;

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["alter", "describe"])))]
pub struct UsersArgs {
    #[command(flatten)]
    pub connection: AdminConnection,
    /// Add or delete SCRAM credentials of --entity-name (--add-config / --delete-config).
    #[arg(long)]
    pub alter: bool,
    /// Show the SCRAM mechanisms and iterations of --entity-name, or of every user.
    #[arg(long)]
    pub describe: bool,
    /// The user (principal name without the User: prefix).
    #[arg(long, value_name = "USER")]
    pub entity_name: Option<String>,
    /// Credentials to set: 'SCRAM-SHA-256=[iterations=8192,password=secret],SCRAM-SHA-512=[password=secret]' (iterations default 4096).
    #[arg(long = "add-config", value_name = "CONFIGS")]
    pub add_config: Vec<String>,
    /// Mechanisms whose credentials to delete: SCRAM-SHA-256,SCRAM-SHA-512.
    #[arg(long = "delete-config", value_name = "MECHANISMS")]
    pub delete_config: Vec<String>,
}

/// One credential to set, before salting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScramSetting {
    pub mechanism: ScramMechanism,
    pub iterations: i32,
    pub password: String,
}

fn mechanism(name: &str) -> Result<ScramMechanism, ClientError> {
    ScramMechanism::from_name(name.trim()).ok_or_else(|| {
        ClientError::Config(format!(
            "unknown SCRAM mechanism '{}' (SCRAM-SHA-256 or SCRAM-SHA-512)",
            name.trim()
        ))
    })
}

/// Parses `--add-config` items as Kafka does: `MECHANISM=[iterations=N,password=P]` or
/// `MECHANISM=[password=P]` (brackets optional); the password is everything after `password=`.
pub fn parse_scram_settings(items: &[String]) -> Result<Vec<ScramSetting>, ClientError> {
    let mut out: Vec<ScramSetting> = Vec::new();
    for item in split_config_list(items) {
        let (name, value) = item.split_once('=').ok_or_else(|| {
            ClientError::Config(format!(
                "Invalid entity config: {item:?} is not of the form MECHANISM=[password=...]"
            ))
        })?;
        let mechanism = mechanism(name)?;
        let value = value.trim();
        let inner = value
            .strip_prefix('[')
            .and_then(|v| v.strip_suffix(']'))
            .unwrap_or(value);
        let invalid = || {
            ClientError::Config(format!(
                "Invalid credential property {}=[...]",
                mechanism.name()
            ))
        };
        let (iterations, rest) = match inner.strip_prefix("iterations=") {
            Some(rest) => {
                let (n, rest) = rest.split_once(',').ok_or_else(invalid)?;
                let n: i32 = n.trim().parse().map_err(|_| invalid())?;
                (if n == -1 { DEFAULT_ITERATIONS } else { n }, rest)
            }
            None => (DEFAULT_ITERATIONS, inner),
        };
        let password = rest.strip_prefix("password=").ok_or_else(invalid)?;
        if iterations < MIN_ITERATIONS {
            return Err(ClientError::Config(format!(
                "Iterations {iterations} is less than the minimum {MIN_ITERATIONS} required for {}",
                mechanism.name()
            )));
        }
        out.retain(|s| s.mechanism != mechanism);
        out.push(ScramSetting {
            mechanism,
            iterations,
            password: password.to_string(),
        });
    }
    Ok(out)
}

/// Parses `--delete-config` items: mechanism names, comma separated.
pub fn parse_deletions(items: &[String]) -> Result<Vec<ScramMechanism>, ClientError> {
    let mut out = Vec::new();
    for item in split_config_list(items) {
        let m = mechanism(&item)?;
        if !out.contains(&m) {
            out.push(m);
        }
    }
    Ok(out)
}

/// Kafka's describe line.
pub fn describe_line(user: &str, credentials: &[(i8, i32)]) -> String {
    let text: Vec<String> = credentials
        .iter()
        .map(|(m, iterations)| {
            let name = ScramMechanism::from_kafka_type(*m).map_or("UNKNOWN", |m| m.name());
            format!("{name}=iterations={iterations}")
        })
        .collect();
    format!(
        "SCRAM credential configs for user-principal '{user}' are {}",
        text.join(", ")
    )
}

pub async fn run(args: UsersArgs) -> Result<(), ClientError> {
    if args.alter {
        let user = args
            .entity_name
            .as_deref()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| ClientError::Config("--alter needs --entity-name".into()))?;
        let settings = parse_scram_settings(&args.add_config)?;
        let deletions = parse_deletions(&args.delete_config)?;
        if settings.is_empty() && deletions.is_empty() {
            return Err(ClientError::Config(
                "--alter needs --add-config or --delete-config".into(),
            ));
        }
        let mut client = args.connection.connect("kavka-configs").await?;
        alter(&mut client, user, &settings, &deletions).await?;
        println!("Completed updating config for user {user}.");
        Ok(())
    } else {
        if !args.add_config.is_empty() || !args.delete_config.is_empty() {
            return Err(ClientError::Config(
                "--add-config and --delete-config need --alter".into(),
            ));
        }
        let mut client = args.connection.connect("kavka-configs").await?;
        describe(&mut client, args.entity_name.as_deref()).await
    }
}

/// Sets and deletes `user`'s credentials in one AlterUserScramCredentials request.
pub async fn alter(
    client: &mut KafkaClient,
    user: &str,
    settings: &[ScramSetting],
    deletions: &[ScramMechanism],
) -> Result<(), ClientError> {
    let name = StrBytes::from_string(user.to_string());
    let upsertions = settings
        .iter()
        .map(|s| {
            let salt = random_salt();
            let salted = salted_password(s.mechanism, &s.password, &salt, s.iterations);
            ScramCredentialUpsertion::default()
                .with_name(name.clone())
                .with_mechanism(s.mechanism.kafka_type())
                .with_iterations(s.iterations)
                .with_salt(salt.into())
                .with_salted_password(salted.into())
        })
        .collect();
    let deletions = deletions
        .iter()
        .map(|m| {
            ScramCredentialDeletion::default()
                .with_name(name.clone())
                .with_mechanism(m.kafka_type())
        })
        .collect();
    let request = AlterUserScramCredentialsRequest::default()
        .with_upsertions(upsertions)
        .with_deletions(deletions);
    let response = client.send_any(&request).await?;
    for result in &response.results {
        crate::client::error::check(result.error_code, result.error_message.as_deref(), || {
            format!("updating the SCRAM credentials of user '{}'", result.user)
        })?;
    }
    Ok(())
}

/// Prints Kafka's line per user (`user`, or every user with credentials).
pub async fn describe(client: &mut KafkaClient, user: Option<&str>) -> Result<(), ClientError> {
    let request = DescribeUserScramCredentialsRequest::default().with_users(
        user.map(|u| vec![UserName::default().with_name(StrBytes::from_string(u.to_string()))]),
    );
    let response = client.send_any(&request).await?;
    crate::client::error::check(
        response.error_code,
        response.error_message.as_deref(),
        || "describing SCRAM credentials".to_string(),
    )?;
    let mut results = response.results;
    results.sort_by(|a, b| a.user.cmp(&b.user));
    for result in results {
        match result.error_code {
            0 => {
                let credentials: Vec<(i8, i32)> = result
                    .credential_infos
                    .iter()
                    .map(|c| (c.mechanism, c.iterations))
                    .collect();
                println!("{}", describe_line(&result.user, &credentials));
            }
            // A named user without credentials: nothing to show, as Kafka's tool shows nothing.
            RESOURCE_NOT_FOUND => {}
            code => {
                return Err(ClientError::kafka(
                    format!("describing the SCRAM credentials of user '{}'", result.user),
                    code,
                    result.error_message.as_deref(),
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(s: &str) -> Vec<String> {
        vec![s.to_string()]
    }

    #[test]
    fn scram_configs_parse_as_kafkas() {
        let s = parse_scram_settings(&items(
            "SCRAM-SHA-512=[password=secret],SCRAM-SHA-256=[iterations=8192,password=s,with,commas]",
        ))
        .unwrap();
        assert_eq!(
            s,
            vec![
                ScramSetting {
                    mechanism: ScramMechanism::Sha512,
                    iterations: 4096,
                    password: "secret".into()
                },
                ScramSetting {
                    mechanism: ScramMechanism::Sha256,
                    iterations: 8192,
                    password: "s,with,commas".into()
                },
            ]
        );
        // iterations=-1 means the default; brackets are optional around a lone password
        let s = parse_scram_settings(&items("SCRAM-SHA-256=[iterations=-1,password=x]")).unwrap();
        assert_eq!(s[0].iterations, 4096);
        let s = parse_scram_settings(&items("SCRAM-SHA-256=password=x")).unwrap();
        assert_eq!((s[0].iterations, s[0].password.as_str()), (4096, "x"));
        let e = parse_scram_settings(&items("SCRAM-SHA-256=[iterations=1000,password=x]"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("less than the minimum 4096"), "{e}");
        assert!(parse_scram_settings(&items("SCRAM-SHA-1=[password=x]")).is_err());
        assert!(parse_scram_settings(&items("SCRAM-SHA-256=[pass=x]")).is_err());
        assert!(parse_scram_settings(&items("SCRAM-SHA-256=[iterations=x,password=x]")).is_err());
        assert!(parse_scram_settings(&items("SCRAM-SHA-256")).is_err());
        assert_eq!(
            parse_deletions(&items("SCRAM-SHA-512, SCRAM-SHA-256,SCRAM-SHA-512")).unwrap(),
            vec![ScramMechanism::Sha512, ScramMechanism::Sha256]
        );
        assert!(parse_deletions(&items("retention.ms")).is_err());
    }

    #[test]
    fn describe_line_is_kafkas() {
        assert_eq!(
            describe_line("alice", &[(2, 4096), (1, 8192)]),
            "SCRAM credential configs for user-principal 'alice' are SCRAM-SHA-512=iterations=4096, \
             SCRAM-SHA-256=iterations=8192"
        );
    }
}
