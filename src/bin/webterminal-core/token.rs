//! `webterminal-core token`: its flags, and printing an access token for a subscriber or a client.

use crate::parse::{parse_client_id, parse_duration, parse_msisdn};
use crate::secret::stored_secret;
use crate::CliResult;
use clap::{ArgGroup, Args};
use std::time::Duration;
use webterminal_core::auth;
use webterminal_core::core::Msisdn;

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("holder").required(true).args(["msisdn", "client"])))]
pub(crate) struct TokenArgs {
    /// A subscriber token for this number, in E.164 (e.g. +4799990001): its `sub`.
    #[arg(long, value_parser = parse_msisdn)]
    msisdn: Option<Msisdn>,
    /// A client token for this client id (its `sub`), acting for the --grant numbers: the rpc
    /// names one of them in `wg2-msisdn` metadata.
    #[arg(long, requires = "grant", value_parser = parse_client_id)]
    client: Option<String>,
    /// A number the client token grants, in E.164 (claim `msisdns`); repeatable.
    #[arg(long, value_parser = parse_msisdn, requires = "client", conflicts_with = "msisdn")]
    grant: Vec<Msisdn>,
    /// Space-separated scopes.
    #[arg(long, default_value = auth::REQUIRED_SCOPE)]
    scope: String,
    /// How long the token is valid (e.g. 30m, 1h).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    ttl: Duration,
    /// HS256 secret to sign with. Default: the stored secret, made if missing.
    #[arg(long, env = "WEBTERMINAL_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
}

pub(crate) fn run_token(args: TokenArgs) -> CliResult {
    let secret = match args.jwt_secret {
        Some(secret) => secret,
        None => stored_secret()?.0,
    };
    let token = match (&args.msisdn, &args.client) {
        (Some(msisdn), _) => auth::mint_token(secret.as_bytes(), msisdn, &args.scope, args.ttl),
        (None, Some(client)) => auth::mint_client_token(
            secret.as_bytes(),
            client,
            &args.grant,
            &args.scope,
            args.ttl,
        ),
        (None, None) => unreachable!("clap requires --msisdn or --client"),
    };
    println!("{token}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Command};
    use clap::Parser;

    #[test]
    fn token_is_for_a_subscriber_or_a_client_with_grants() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(["webterminal-core", "token"].iter().chain(args)).map(|cli| {
                let Command::Token(args) = cli.command else {
                    panic!("expected token")
                };
                args
            })
        };
        let client = parse(&[
            "--client",
            "voicebot",
            "--grant",
            "+4799990001",
            "--grant",
            "+4799990002",
        ])
        .unwrap();
        assert_eq!(client.client.as_deref(), Some("voicebot"));
        assert_eq!(client.msisdn, None);
        assert_eq!(
            client.grant,
            [
                Msisdn::parse("+4799990001").unwrap(),
                Msisdn::parse("+4799990002").unwrap()
            ]
        );
        let subscriber = parse(&["--msisdn", "+4799990001"]).unwrap();
        assert_eq!(subscriber.client, None);
        assert!(subscriber.grant.is_empty());
        for refused in [
            &[][..],
            &[
                "--msisdn",
                "+4799990001",
                "--client",
                "voicebot",
                "--grant",
                "+4799990002",
            ],
            &["--client", "voicebot"],
            &["--grant", "+4799990001"],
            &["--msisdn", "+4799990001", "--grant", "+4799990002"],
            &["--client", "voicebot", "--grant", "not a number"],
            &["--client", "", "--grant", "+4799990001"],
        ] {
            assert!(parse(refused).is_err(), "{refused:?} must be refused");
        }
    }
}
