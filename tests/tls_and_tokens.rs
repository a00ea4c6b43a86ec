//! TLS and production access tokens over real sockets (PROTOCOL.md sections 1 and 6).
//!
//! - TLS end to end: a self-signed certificate made here with rcgen; a Pipe over TLS gets its
//!   opening `Idle`, a plaintext client gets nothing; unreadable or invalid TLS and key files stop
//!   the server at startup.
//! - Tokens: RS256 and ES256 with PEM public keys, RS256 and ES256 from a JWKS by `kid`, an RFC 9068
//!   access token (`typ: at+jwt`) with issuer and audience checks, HS256 alongside; and each refusal
//!   with its status: expired, wrong key, wrong issuer, wrong audience, unknown `kid`
//!   (`UNAUTHENTICATED`), missing scope (`PERMISSION_DENIED`).
//!
//! Keys: the RSA pairs are committed under tests/keys/ (see its README); the EC P-256 pairs are
//! generated here with rcgen.

#[path = "support/in_process.rs"]
mod in_process;
#[path = "support/terminal.rs"]
mod terminal;

use in_process::Core;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic::{Code, Status};
use webterminal_core::auth::REQUIRED_SCOPE;
use webterminal_core::proto::webterminal::web_terminal_message::Message;
use webterminal_core::proto::webterminal::web_terminal_service_client::WebTerminalServiceClient;
use webterminal_core::proto::webterminal::WebTerminalMessage;
use webterminal_core::server::{PhoneNetworkKind, ServeError, ServerConfig, TlsFiles, TokenPolicy};

const SECRET: &[u8] = b"tls-and-tokens test secret......";
const A: &str = "+4799990001";
const WAIT: Duration = Duration::from_secs(10);
const ISSUER: &str = "https://idp.example.net/";
const AUDIENCE: &str = "https://webterminal.example.net";

// --- files and keys ------------------------------------------------------------------------

/// A fresh directory under cargo's per-test-target temporary directory, removed on drop.
fn scratch_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn committed_key(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keys")
        .join(name)
}

/// A signing key the test holds, and how the server may know its public half.
struct SigningKey {
    algorithm: Algorithm,
    encoding: EncodingKey,
    public_pem: String,
}

impl SigningKey {
    fn rsa(name: &str) -> Self {
        let private = std::fs::read(committed_key(&format!("{name}.key.pem"))).unwrap();
        SigningKey {
            algorithm: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_pem(&private).unwrap(),
            public_pem: std::fs::read_to_string(committed_key(&format!("{name}.pub.pem"))).unwrap(),
        }
    }

    fn ec() -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        SigningKey {
            algorithm: Algorithm::ES256,
            encoding: EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap(),
            public_pem: pair.public_key_pem(),
        }
    }

    /// The public key as a JWK with `kid` (RFC 7517), as an identity provider publishes it.
    fn jwk(&self, kid: &str) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.encoding, self.algorithm).unwrap();
        jwk.common.key_id = Some(kid.into());
        jwk
    }

    fn sign(&self, header: Header, claims: &Value) -> String {
        assert_eq!(header.alg, self.algorithm);
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// Every key of these tests, made once.
struct Keys {
    /// Trusted through `--public-key`.
    rsa_pem: SigningKey,
    ec_pem: SigningKey,
    /// Trusted through the JWKS, as kids `rsa-jwks` and `ec-jwks`.
    rsa_jwks: SigningKey,
    ec_jwks: SigningKey,
    /// Trusted nowhere.
    rsa_stranger: SigningKey,
    ec_stranger: SigningKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        rsa_pem: SigningKey::rsa("rsa-1"),
        ec_pem: SigningKey::ec(),
        // The JWKS publishes rsa-1 again under a kid (an IdP's key, also pinned as PEM), and an
        // EC key of its own.
        rsa_jwks: SigningKey::rsa("rsa-1"),
        ec_jwks: SigningKey::ec(),
        rsa_stranger: SigningKey::rsa("rsa-2"),
        ec_stranger: SigningKey::ec(),
    })
}

/// `TokenPolicy` trusting the PEM keys and the JWKS of [`keys`], with no issuer or audience.
fn token_policy(dir: &Path) -> TokenPolicy {
    let keys = keys();
    let set = JwkSet {
        keys: vec![keys.rsa_jwks.jwk("rsa-jwks"), keys.ec_jwks.jwk("ec-jwks")],
    };
    TokenPolicy {
        public_keys: vec![
            write(dir, "rsa.pub.pem", &keys.rsa_pem.public_pem),
            write(dir, "ec.pub.pem", &keys.ec_pem.public_pem),
        ],
        jwks: Some(write(dir, "jwks.json", serde_json::to_vec(&set).unwrap())),
        issuer: None,
        audience: None,
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims a token for A needs, valid for 10 minutes.
fn claims() -> Value {
    json!({ "sub": A, "scope": REQUIRED_SCOPE, "exp": now() + 600, "iat": now() })
}

/// Claims as RFC 9068 section 2.2 lists them for an OAuth 2.0 access token.
fn access_token_claims() -> Value {
    json!({
        "iss": ISSUER,
        "exp": now() + 600,
        "aud": [AUDIENCE, "https://other-api.example.net"],
        "sub": A,
        "client_id": "webterminal-web-app",
        "iat": now(),
        "jti": "8c1b2f4e-4d2a-4d6e-9a57-2f0c6d3e9b11",
        "scope": format!("openid {REQUIRED_SCOPE} events.read"),
        "auth_time": now() - 60,
        "acr": "urn:mace:incommon:iap:silver",
    })
}

fn header(algorithm: Algorithm, kid: Option<&str>) -> Header {
    Header {
        kid: kid.map(str::to_owned),
        ..Header::new(algorithm)
    }
}

// --- the server and a terminal ---------------------------------------------------------------

fn config(tokens: TokenPolicy) -> ServerConfig {
    let mut config = ServerConfig::new(SECRET.to_vec());
    config.phone_network = PhoneNetworkKind::None;
    config.tokens = tokens;
    config
}

async fn start(config: ServerConfig) -> Core {
    Core::start(config).await
}

/// Opens a Pipe with `token` and returns its first message, or the status that refused it.
async fn open_pipe(channel: Channel, token: &str) -> Result<WebTerminalMessage, Status> {
    let mut client = WebTerminalServiceClient::new(channel);
    let (_tx, rx) = mpsc::channel::<WebTerminalMessage>(1);
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    request
        .metadata_mut()
        .insert("authorization", terminal::bearer(token));
    let opened = tokio::time::timeout(WAIT, async {
        let mut stream = client.pipe(request).await?.into_inner();
        stream
            .message()
            .await?
            .ok_or_else(|| Status::internal("the stream ended without a message"))
    });
    opened.await.expect("the rpc answered in time")
}

#[track_caller]
fn assert_idle(opened: Result<WebTerminalMessage, Status>, what: &str) {
    match opened {
        Ok(WebTerminalMessage {
            message: Some(Message::Idle(_)),
            ..
        }) => {}
        other => panic!("{what}: expected the opening Idle, got {other:?}"),
    }
}

#[track_caller]
fn assert_refused(opened: Result<WebTerminalMessage, Status>, code: Code, what: &str) -> Status {
    match opened {
        Err(status) if status.code() == code => status,
        other => panic!("{what}: expected {code:?}, got {other:?}"),
    }
}

// --- TLS ---------------------------------------------------------------------------------------

/// A self-signed certificate for `localhost`, written as PEM files.
struct SelfSigned {
    files: TlsFiles,
    cert_pem: String,
}

fn self_signed(dir: &Path) -> SelfSigned {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_pem = cert.pem();
    SelfSigned {
        files: TlsFiles {
            cert: write(dir, "cert.pem", &cert_pem),
            key: write(dir, "key.pem", signing_key.serialize_pem()),
        },
        cert_pem,
    }
}

#[tokio::test]
async fn tls_end_to_end_and_plaintext_clients_are_turned_away() {
    let dir = scratch_dir();
    let tls = self_signed(dir.path());
    let mut config = config(TokenPolicy::default());
    config.tls = Some(tls.files.clone());
    let core = start(config).await;
    let token = terminal::token(SECRET, A);

    // A client that trusts the certificate: a Pipe over TLS gets its opening Idle.
    let channel = tls_channel(core.addr, &tls.cert_pem)
        .await
        .expect("a TLS connection");
    assert_idle(open_pipe(channel, &token).await, "Pipe over TLS");

    // A plaintext HTTP/2 client against the TLS listener gets no rpc through.
    let plaintext = tokio::time::timeout(WAIT, async {
        let channel = Channel::from_shared(format!("http://{}", core.addr))
            .unwrap()
            .connect()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        open_pipe(channel, &token).await
    })
    .await
    .expect("the plaintext attempt ended in time");
    assert!(plaintext.is_err(), "plaintext got through: {plaintext:?}");

    // A TLS client that does not trust the self-signed certificate is refused too.
    let untrusting = tls_channel(core.addr, &self_signed(scratch_dir().path()).cert_pem).await;
    assert!(untrusting.is_err(), "an untrusted certificate was accepted");

    // The server still serves TLS clients after those failed handshakes.
    let channel = tls_channel(core.addr, &tls.cert_pem)
        .await
        .expect("a TLS connection after failed ones");
    assert_idle(open_pipe(channel, &token).await, "Pipe over TLS, again");
    core.stop().await;
}

/// A TLS connection to `addr` (as `localhost`) trusting `cert_pem`.
async fn tls_channel(
    addr: std::net::SocketAddr,
    cert_pem: &str,
) -> Result<Channel, tonic::transport::Error> {
    Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(cert_pem))
                .domain_name("localhost"),
        )
        .unwrap()
        .connect()
        .await
}

/// Starts a server with `config` and expects `serve` to fail at once with a startup error.
async fn startup_error(config: ServerConfig) -> ServeError {
    let mut core = start(config).await;
    // Serve returns at once.
    core.ended().await.expect_err("serve refused to start")
}

#[tokio::test]
async fn unreadable_or_invalid_tls_files_stop_the_server_at_startup() {
    let dir = scratch_dir();
    let tls = self_signed(dir.path());

    let mut missing = config(TokenPolicy::default());
    missing.tls = Some(TlsFiles {
        cert: dir.path().join("no-such-cert.pem"),
        key: tls.files.key.clone(),
    });
    let err = startup_error(missing).await;
    assert!(matches!(err, ServeError::Tls(_)), "{err:?}");
    assert!(err.to_string().contains("no-such-cert.pem"), "{err}");

    // Certificate and key swapped.
    let mut swapped = config(TokenPolicy::default());
    swapped.tls = Some(TlsFiles {
        cert: tls.files.key.clone(),
        key: tls.files.cert.clone(),
    });
    let err = startup_error(swapped).await;
    assert!(matches!(err, ServeError::Tls(_)), "{err:?}");

    // A key that is not the certificate's.
    let other_dir = scratch_dir();
    let other = self_signed(other_dir.path());
    let mut mismatched = config(TokenPolicy::default());
    mismatched.tls = Some(TlsFiles {
        cert: tls.files.cert.clone(),
        key: other.files.key.clone(),
    });
    let err = startup_error(mismatched).await;
    assert!(matches!(err, ServeError::Tls(_)), "{err:?}");
    assert!(err.to_string().contains("cert.pem"), "{err}");
}

#[tokio::test]
async fn unreadable_or_invalid_key_files_stop_the_server_at_startup() {
    let dir = scratch_dir();
    let unreadable = config(TokenPolicy {
        public_keys: vec![dir.path().join("missing.pub.pem")],
        ..TokenPolicy::default()
    });
    let err = startup_error(unreadable).await;
    assert!(matches!(err, ServeError::Keys(_)), "{err:?}");
    assert!(err.to_string().contains("missing.pub.pem"), "{err}");

    let private = config(TokenPolicy {
        public_keys: vec![committed_key("rsa-1.key.pem")],
        ..TokenPolicy::default()
    });
    let err = startup_error(private).await;
    assert!(err.to_string().contains("private key"), "{err}");

    let not_jwks = config(TokenPolicy {
        jwks: Some(write(dir.path(), "jwks.json", "{\"keys\": 3}")),
        ..TokenPolicy::default()
    });
    let err = startup_error(not_jwks).await;
    assert!(matches!(err, ServeError::Keys(_)), "{err:?}");
    assert!(err.to_string().contains("jwks.json"), "{err}");
}

// --- tokens ------------------------------------------------------------------------------------

#[tokio::test]
async fn rs256_and_es256_tokens_pass_with_pem_keys_and_jwks_and_hs256_still_works() {
    let keys = keys();
    let dir = scratch_dir();
    let core = start(config(token_policy(dir.path()))).await;
    let cases = [
        (
            "RS256, PEM key",
            keys.rsa_pem.sign(header(Algorithm::RS256, None), &claims()),
        ),
        (
            "ES256, PEM key",
            keys.ec_pem.sign(header(Algorithm::ES256, None), &claims()),
        ),
        (
            "RS256, JWKS key by kid",
            keys.rsa_jwks
                .sign(header(Algorithm::RS256, Some("rsa-jwks")), &claims()),
        ),
        (
            "ES256, JWKS key by kid",
            keys.ec_jwks
                .sign(header(Algorithm::ES256, Some("ec-jwks")), &claims()),
        ),
        (
            "ES256, JWKS key, no kid: every ES256 key is tried",
            keys.ec_jwks.sign(header(Algorithm::ES256, None), &claims()),
        ),
        ("HS256, the shared secret", terminal::token(SECRET, A)),
    ];
    for (what, token) in cases {
        assert_idle(open_pipe(core.channel().await, &token).await, what);
    }
    core.stop().await;
}

#[tokio::test]
async fn an_rfc_9068_access_token_passes_the_issuer_and_audience_checks() {
    let keys = keys();
    let dir = scratch_dir();
    let mut policy = token_policy(dir.path());
    policy.issuer = Some(ISSUER.into());
    policy.audience = Some(AUDIENCE.into());
    let core = start(config(policy)).await;
    let at_jwt = |kid: &str| Header {
        typ: Some("at+jwt".into()),
        ..header(Algorithm::RS256, Some(kid))
    };

    let token = keys
        .rsa_jwks
        .sign(at_jwt("rsa-jwks"), &access_token_claims());
    assert_idle(
        open_pipe(core.channel().await, &token).await,
        "RFC 9068 access token",
    );
    let es = keys.ec_jwks.sign(
        Header {
            typ: Some("application/at+jwt".into()),
            ..header(Algorithm::ES256, Some("ec-jwks"))
        },
        &access_token_claims(),
    );
    assert_idle(
        open_pipe(core.channel().await, &es).await,
        "RFC 9068 access token, ES256",
    );

    let mut wrong_issuer = access_token_claims();
    wrong_issuer["iss"] = "https://evil.example.net/".into();
    let token = keys.rsa_jwks.sign(at_jwt("rsa-jwks"), &wrong_issuer);
    let status = assert_refused(
        open_pipe(core.channel().await, &token).await,
        Code::Unauthenticated,
        "wrong issuer",
    );
    assert!(status.message().contains("iss"), "{}", status.message());

    let mut wrong_audience = access_token_claims();
    wrong_audience["aud"] = "https://billing.example.net".into();
    let token = keys.rsa_jwks.sign(at_jwt("rsa-jwks"), &wrong_audience);
    let status = assert_refused(
        open_pipe(core.channel().await, &token).await,
        Code::Unauthenticated,
        "wrong audience",
    );
    assert!(status.message().contains("aud"), "{}", status.message());

    // With an issuer configured, a token without one (like the CLI's HS256 tokens) is refused.
    let hs256 = terminal::token(SECRET, A);
    assert_refused(
        open_pipe(core.channel().await, &hs256).await,
        Code::Unauthenticated,
        "no iss",
    );
    core.stop().await;
}

#[tokio::test]
async fn each_token_failure_gets_its_status() {
    let keys = keys();
    let dir = scratch_dir();
    let core = start(config(token_policy(dir.path()))).await;

    // Expired past the 60 s leeway.
    let mut expired = claims();
    expired["exp"] = (now() - 120).into();
    let token = keys.rsa_pem.sign(header(Algorithm::RS256, None), &expired);
    let status = assert_refused(
        open_pipe(core.channel().await, &token).await,
        Code::Unauthenticated,
        "expired",
    );
    assert!(status.message().contains("expired"), "{}", status.message());
    // ... but 30 s ago is within the leeway.
    let mut skewed = claims();
    skewed["exp"] = (now() - 30).into();
    let token = keys.ec_pem.sign(header(Algorithm::ES256, None), &skewed);
    assert_idle(
        open_pipe(core.channel().await, &token).await,
        "within the leeway",
    );

    // Signed by keys the server does not trust.
    for (what, token) in [
        (
            "wrong RSA key",
            keys.rsa_stranger
                .sign(header(Algorithm::RS256, None), &claims()),
        ),
        (
            "wrong EC key",
            keys.ec_stranger
                .sign(header(Algorithm::ES256, None), &claims()),
        ),
        (
            "wrong EC key named as a JWKS key",
            keys.ec_stranger
                .sign(header(Algorithm::ES256, Some("ec-jwks")), &claims()),
        ),
        ("wrong HS256 secret", terminal::token(b"not the secret", A)),
    ] {
        let status = assert_refused(
            open_pipe(core.channel().await, &token).await,
            Code::Unauthenticated,
            what,
        );
        assert!(
            status.message().contains("bad signature"),
            "{what}: {}",
            status.message()
        );
    }

    // A kid the JWKS does not have.
    let token = keys
        .rsa_stranger
        .sign(header(Algorithm::RS256, Some("retired-2023")), &claims());
    let status = assert_refused(
        open_pipe(core.channel().await, &token).await,
        Code::Unauthenticated,
        "unknown kid",
    );
    assert!(
        status.message().contains("kid") && status.message().contains("retired-2023"),
        "{}",
        status.message()
    );

    // A good signature without the scope.
    let mut unscoped = claims();
    unscoped["scope"] = "openid events.read".into();
    let token = keys
        .ec_jwks
        .sign(header(Algorithm::ES256, Some("ec-jwks")), &unscoped);
    let status = assert_refused(
        open_pipe(core.channel().await, &token).await,
        Code::PermissionDenied,
        "missing scope",
    );
    assert!(
        status.message().contains(REQUIRED_SCOPE),
        "{}",
        status.message()
    );

    // The token's alg must be its key's: an HS256 token "signed" with an RSA public key is refused.
    let confused = jsonwebtoken::encode(
        &header(Algorithm::HS256, None),
        &claims(),
        &EncodingKey::from_secret(keys.rsa_pem.public_pem.as_bytes()),
    )
    .unwrap();
    assert_refused(
        open_pipe(core.channel().await, &confused).await,
        Code::Unauthenticated,
        "algorithm confusion",
    );
    core.stop().await;
}
