//! PROTOCOL.md section 11: the browsers' WebSocket gateway on the gRPC port, through a
//! tokio-tungstenite client over real loopback sockets: every auth path, the JSON framing
//! (`{"result"}`, `{"error"}`, both field naming styles), bad input, limits, keepalive, a call
//! between a WebSocket terminal and a gRPC terminal, and WSS. The section-4 scenarios run over
//! WebSockets too (`for_all_transports!` in their files).

use crate::support::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::WebSocketStream;
use webterminal_core::auth::{mint_client_token, REQUIRED_SCOPE};
use webterminal_core::core::Msisdn;
use webterminal_core::server::{PhoneNetworkKind, ServerConfig};

type Socket<S = tokio::net::TcpStream> = WebSocketStream<S>;

/// Opens `ws://<core>/<path>` with these extra headers; returns the socket and the subprotocol the
/// core answered with.
async fn connect(
    core: &TestCore,
    path: &str,
    headers: &[(&str, String)],
) -> (Socket, Option<String>) {
    let tcp = tokio::net::TcpStream::connect(core.addr).await.unwrap();
    handshake(tcp, &format!("ws://{}/{path}", core.addr), headers).await
}

async fn handshake<S>(io: S, url: &str, headers: &[(&str, String)]) -> (Socket<S>, Option<String>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    let (socket, response) = tokio_tungstenite::client_async(request, io)
        .await
        .unwrap_or_else(|e| panic!("upgrading {url}: {e}"));
    let protocol = response
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_owned());
    (socket, protocol)
}

fn subprotocol(token: &str) -> (&'static str, String) {
    ("sec-websocket-protocol", format!("Bearer, {token}"))
}

/// The next data frame as JSON, within 5 s (pings and pongs skipped); panics on a close.
async fn next_json<S>(socket: &mut Socket<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let frame = tokio::time::timeout(RECV_TIMEOUT, socket.next())
            .await
            .expect("a frame within 5 s")
            .expect("the socket is open")
            .expect("a frame");
        match frame {
            Frame::Text(text) => return serde_json::from_str(&text).expect("a JSON frame"),
            Frame::Ping(_) | Frame::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// The next frame's `result`.
async fn next_result(socket: &mut Socket) -> Value {
    let frame = next_json(socket).await;
    frame
        .get("result")
        .unwrap_or_else(|| panic!("expected a result frame, got {frame}"))
        .clone()
}

/// An `{"error": {"code", "message"}}` frame with `code`, then a close frame (close code 1008);
/// returns the message.
async fn expect_error_then_close(socket: &mut Socket, code: tonic::Code) -> String {
    let frame = next_json(socket).await;
    let error = frame
        .get("error")
        .unwrap_or_else(|| panic!("expected an error frame, got {frame}"));
    assert_eq!(error["code"], json!(code as i32), "{frame}");
    let message = error["message"].as_str().expect("a message").to_owned();
    assert!(!message.is_empty());
    let close = tokio::time::timeout(RECV_TIMEOUT, socket.next())
        .await
        .expect("a close within 5 s");
    match close {
        Some(Ok(Frame::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1008),
        other => panic!("expected a close frame after the error, got {other:?}"),
    }
    message
}

async fn send_json(socket: &mut Socket, value: Value) {
    socket.send(Frame::text(value.to_string())).await.unwrap();
}

fn client_token(msisdns: &[&str]) -> String {
    let granted: Vec<Msisdn> = msisdns.iter().map(|m| Msisdn::parse(m).unwrap()).collect();
    mint_client_token(
        SECRET,
        "browser-app",
        &granted,
        REQUIRED_SCOPE,
        Duration::from_secs(3600),
    )
}

fn no_phones() -> ServerConfig {
    TestCore::config(PhoneNetworkKind::None)
}

#[tokio::test]
async fn the_subprotocol_token_is_answered_with_bearer_and_a_pipe_is_greeted_idle() {
    let core = TestCore::start(no_phones()).await;
    let (mut socket, protocol) = connect(&core, "pipe", &[subprotocol(&TestCore::token(A))]).await;
    assert_eq!(protocol.as_deref(), Some("Bearer"));
    assert_eq!(
        next_json(&mut socket).await,
        json!({"result": {"idle": {}}})
    );
    core.wait_for_stats("one terminal", |s| s.terminals == 1)
        .await;
    drop(socket);
    core.assert_no_calls_left().await;
}

#[tokio::test]
async fn the_token_cookie_is_accepted_without_origin_or_from_the_same_origin() {
    let core = TestCore::start(no_phones()).await;
    let cookie = (
        "cookie",
        format!("theme=dark; token={}", TestCore::token(A)),
    );
    let (mut plain, protocol) = connect(&core, "pipe", std::slice::from_ref(&cookie)).await;
    assert_eq!(protocol, None, "no subprotocol offered, none answered");
    assert_eq!(next_json(&mut plain).await, json!({"result": {"idle": {}}}));
    // tungstenite sends Host as the URL's authority: the page's origin is the core's own.
    let same = ("origin", format!("http://{}", core.addr));
    let (mut page, _) = connect(&core, "pipe", &[cookie, same]).await;
    assert_eq!(next_json(&mut page).await, json!({"result": {"idle": {}}}));
    core.wait_for_stats("two terminals", |s| s.terminals == 2)
        .await;
}

#[tokio::test]
async fn the_token_cookie_from_a_foreign_origin_is_refused_unless_allowed() {
    let core = TestCore::start(no_phones()).await;
    let cookie = ("cookie", format!("token={}", TestCore::token(A)));
    let foreign = ("origin", "https://evil.example".to_owned());
    let (mut socket, _) = connect(&core, "pipe", &[cookie.clone(), foreign.clone()]).await;
    let why = expect_error_then_close(&mut socket, tonic::Code::PermissionDenied).await;
    assert!(why.contains("evil.example"), "{why}");
    assert_eq!(core.stats().await.terminals, 0);
    // The same page with the token in the subprotocol: no cookie rides, so no Origin rule.
    let (mut socket, _) = connect(
        &core,
        "pipe",
        &[subprotocol(&TestCore::token(A)), foreign.clone()],
    )
    .await;
    assert_eq!(
        next_json(&mut socket).await,
        json!({"result": {"idle": {}}})
    );

    let mut config = no_phones();
    config.allowed_origins = vec!["https://evil.example".to_owned()];
    let allowing = TestCore::start(config).await;
    let (mut socket, _) = connect(&allowing, "pipe", &[cookie, foreign]).await;
    assert_eq!(
        next_json(&mut socket).await,
        json!({"result": {"idle": {}}})
    );
}

#[tokio::test]
async fn a_missing_or_bad_token_is_an_unauthenticated_error_frame_then_close() {
    let core = TestCore::start(no_phones()).await;
    let (mut socket, protocol) = connect(&core, "multipipe", &[]).await;
    assert_eq!(protocol, None);
    let why = expect_error_then_close(&mut socket, tonic::Code::Unauthenticated).await;
    assert!(why.contains("Sec-WebSocket-Protocol"), "{why}");

    // Bearer offered without a token: the upgrade still answers Bearer, so the page reads why.
    let offered = [("sec-websocket-protocol", "Bearer".to_owned())];
    let (mut socket, protocol) = connect(&core, "multipipe", &offered).await;
    assert_eq!(protocol.as_deref(), Some("Bearer"));
    expect_error_then_close(&mut socket, tonic::Code::Unauthenticated).await;

    let (mut socket, protocol) = connect(&core, "pipe", &[subprotocol("not.a.jwt")]).await;
    assert_eq!(protocol.as_deref(), Some("Bearer"));
    let why = expect_error_then_close(&mut socket, tonic::Code::Unauthenticated).await;
    assert!(why.contains("invalid access token"), "{why}");
    assert_eq!(core.stats().await.terminals, 0, "no terminal registered");
}

#[tokio::test]
async fn a_client_token_names_its_subscriber_in_a_wg2_msisdn_header_or_query_parameter() {
    let core = TestCore::start(no_phones()).await;
    let token = client_token(&[A, B]);
    // None named: UNAUTHENTICATED, as the rpc.
    let (mut socket, _) = connect(&core, "pipe", &[subprotocol(&token)]).await;
    let why = expect_error_then_close(&mut socket, tonic::Code::Unauthenticated).await;
    assert!(why.contains("wg2-msisdn"), "{why}");
    // Named in a header.
    let header = ("wg2-msisdn", A.to_owned());
    let (mut socket, _) = connect(&core, "pipe", &[subprotocol(&token), header]).await;
    assert_eq!(
        next_json(&mut socket).await,
        json!({"result": {"idle": {}}})
    );
    // Named in the query, without its '+' or with it escaped.
    for query in ["wg2-msisdn=4799990002", "wg2-msisdn=%2B4799990002"] {
        let tcp = tokio::net::TcpStream::connect(core.addr).await.unwrap();
        let url = format!("ws://{}/multipipe?{query}", core.addr);
        let (mut socket, _) = handshake(tcp, &url, &[subprotocol(&token)]).await;
        // A MultiPipe says nothing on open: a bad call id proves the session is up.
        send_json(&mut socket, json!({"callId": "x", "bye": {}})).await;
        let error = next_result(&mut socket).await;
        assert_eq!(error["error"]["err"], "INVALID_CALL_ID", "{error}");
    }
    // A number the token does not grant: PERMISSION_DENIED.
    let tcp = tokio::net::TcpStream::connect(core.addr).await.unwrap();
    let url = format!(
        "ws://{}/pipe?wg2-msisdn={}",
        core.addr,
        C.trim_start_matches('+')
    );
    let (socket, _) = handshake(tcp, &url, &[subprotocol(&token)]).await;
    let mut socket = socket;
    expect_error_then_close(&mut socket, tonic::Code::PermissionDenied).await;
}

#[tokio::test]
async fn frames_are_canonical_protobuf_json_and_both_naming_styles_are_read() {
    let core = TestCore::start(no_phones()).await;
    let mut b = core.open_over(Transport::Grpc, Kind::Multi, B).await;
    let (mut a, _) = connect(&core, "multipipe", &[subprotocol(&TestCore::token(A))]).await;
    core.wait_for_stats("both registered", |s| s.terminals == 2)
        .await;

    // lowerCamelCase, the number without its '+'.
    let first = uuid();
    send_json(
        &mut a,
        json!({"callId": first, "offer": {"sdp": chromium_offer(), "msisdn": {"e164": "4799990002"}}}),
    )
    .await;
    let offered = b.expect_offer_of(&chromium_offer(), A).await;
    b.send(msg::ringing(&offered)).await;
    assert_eq!(
        next_result(&mut a).await,
        json!({"ringing": {}, "callId": first}),
        "lowerCamelCase out, empty fields left out"
    );
    b.send(msg::answer(&offered, &chromium_answer())).await;
    assert_eq!(
        next_result(&mut a).await,
        json!({"answer": {"sdp": chromium_answer()}, "callId": first})
    );
    // Proto field names in, enums out as their names.
    send_json(&mut a, json!({"call_id": first, "bye": {}})).await;
    b.expect_bye_on(&offered, Reason::NormalClearing).await;
    send_json(
        &mut a,
        json!({"call_id": first, "bye": {}, "unknownField": 1}),
    )
    .await;
    assert_eq!(
        next_result(&mut a).await["error"]["err"],
        "INVALID_CALL_ID",
        "unknown fields are ignored; the call is over"
    );
    // And a call from B: Offer in JSON, Bye with its reason's name.
    let id = b.dial(A, &aiortc_offer()).await;
    let offer = next_result(&mut a).await;
    assert_eq!(offer["offer"]["sdp"], json!(aiortc_offer()));
    assert_eq!(offer["offer"]["msisdn"], json!({"e164": B}));
    let a_id = offer["callId"].as_str().unwrap().to_owned();
    b.send(msg::bye(&id)).await;
    assert_eq!(
        next_result(&mut a).await,
        json!({"bye": {"reason": "CANCELLED"}, "callId": a_id})
    );
    drop(a);
    core.assert_no_calls_left().await;
}

#[tokio::test]
async fn a_call_between_a_websocket_and_a_grpc_terminal_in_both_directions() {
    let core = TestCore::new(PhoneNetworkKind::None).await;
    for (caller, callee) in [
        (Transport::WebSocket, Transport::Grpc),
        (Transport::Grpc, Transport::WebSocket),
    ] {
        let mut a = core.open_over(caller, Kind::Pipe, A).await;
        a.expect_greeting_idle().await;
        let mut b = core.open_over(callee, Kind::Multi, B).await;
        let (a_id, b_id) = establish(&mut a, &mut b).await;
        // The callee hangs up; then the caller calls again and hangs up itself.
        b.send(msg::bye(&b_id)).await;
        a.expect_bye_on(&a_id, Reason::NormalClearing).await;
        let (a_id, b_id) = establish(&mut a, &mut b).await;
        a.send(msg::bye(&a_id)).await;
        b.expect_bye_on(&b_id, Reason::NormalClearing).await;
        a.expect_silent(SILENCE).await;
        b.expect_silent(SILENCE).await;
        a.cancel();
        b.cancel();
        core.wait_for_stats("both gone", |s| s.terminals == 0).await;
    }
    core.assert_no_calls_left().await;
}

#[tokio::test]
async fn text_that_is_not_a_message_and_binary_frames_end_the_session_with_invalid_argument() {
    let core = TestCore::start(no_phones()).await;
    let token = TestCore::token(A);
    let (mut socket, _) = connect(&core, "multipipe", &[subprotocol(&token)]).await;
    socket.send(Frame::text("{not json")).await.unwrap();
    let why = expect_error_then_close(&mut socket, tonic::Code::InvalidArgument).await;
    assert!(why.contains("protobuf JSON"), "{why}");

    let (mut socket, _) = connect(&core, "multipipe", &[subprotocol(&token)]).await;
    send_json(&mut socket, json!({"offer": {"sdp": 5}})).await;
    expect_error_then_close(&mut socket, tonic::Code::InvalidArgument).await;

    let (mut socket, _) = connect(&core, "pipe", &[subprotocol(&token)]).await;
    assert_eq!(
        next_json(&mut socket).await,
        json!({"result": {"idle": {}}})
    );
    socket.send(Frame::binary(vec![0x52, 0x00])).await.unwrap();
    let why = expect_error_then_close(&mut socket, tonic::Code::InvalidArgument).await;
    assert!(why.contains("binary"), "{why}");
    core.wait_for_stats("every session ended", |s| s.terminals == 0)
        .await;
}

#[tokio::test]
async fn an_empty_message_is_a_keepalive_and_gets_nothing_back() {
    let core = TestCore::start(no_phones()).await;
    let (mut socket, _) = connect(&core, "multipipe", &[subprotocol(&TestCore::token(A))]).await;
    send_json(&mut socket, json!({})).await;
    send_json(&mut socket, json!({"callId": "x", "bye": {}})).await;
    // The first answer is the bad id's: the keepalive got none.
    assert_eq!(next_result(&mut socket).await["callId"], "x");
}

#[tokio::test]
async fn a_frame_over_the_message_size_limit_ends_the_session_with_resource_exhausted() {
    let mut config = no_phones();
    config.max_message_bytes = 4096;
    let core = TestCore::start(config).await;
    let (mut socket, _) = connect(&core, "multipipe", &[subprotocol(&TestCore::token(A))]).await;
    let sdp = "v=0\r\n".repeat(1000);
    send_json(
        &mut socket,
        json!({"callId": uuid(), "offer": {"sdp": sdp, "msisdn": {"e164": B}}}),
    )
    .await;
    let why = expect_error_then_close(&mut socket, tonic::Code::ResourceExhausted).await;
    assert!(why.contains("size limit"), "{why}");
    core.wait_for_stats("the session ended", |s| s.terminals == 0)
        .await;
}

#[tokio::test]
async fn messages_over_the_rate_limit_get_rate_limit_hit_on_the_stream() {
    let mut config = no_phones();
    // A budget of 2 (burst), refilled at 1 a second.
    config.messages_per_second = 1;
    let core = TestCore::start(config).await;
    let (mut socket, _) = connect(&core, "multipipe", &[subprotocol(&TestCore::token(A))]).await;
    for n in 0..6 {
        send_json(&mut socket, json!({"callId": format!("m{n}"), "bye": {}})).await;
    }
    let mut codes = Vec::new();
    for n in 0..6 {
        let result = next_result(&mut socket).await;
        assert_eq!(result["callId"], json!(format!("m{n}")), "answers in order");
        codes.push(result["error"]["err"].as_str().unwrap().to_owned());
    }
    assert_eq!(codes[0], "INVALID_CALL_ID", "{codes:?}");
    assert!(
        codes.iter().filter(|c| *c == "RATE_LIMIT_HIT").count() >= 3,
        "at most the burst and what refilled meanwhile passes: {codes:?}"
    );
}

#[tokio::test]
async fn a_peer_that_does_not_answer_pings_is_dropped_and_one_that_does_stays() {
    let mut config = no_phones();
    // Room for a busy machine to schedule the reading peer's answer.
    config.keepalive.interval = Duration::from_millis(100);
    config.keepalive.timeout = Duration::from_millis(1500);
    let core = TestCore::start(config).await;
    // This one never reads, so tungstenite never answers the pings.
    let (_silent, _) = connect(&core, "multipipe", &[subprotocol(&TestCore::token(A))]).await;
    let (mut reading, _) = connect(&core, "multipipe", &[subprotocol(&TestCore::token(B))]).await;
    let reader = tokio::spawn(async move {
        let mut pings = 0;
        while let Some(Ok(frame)) = reading.next().await {
            if matches!(frame, Frame::Ping(_)) {
                pings += 1;
            }
        }
        pings
    });
    core.wait_for_stats("both registered", |s| s.terminals == 2)
        .await;
    core.wait_for_stats("the silent peer dropped", |s| s.terminals == 1)
        .await;
    let ids = core.terminal_ids(B).await;
    assert_eq!(ids.len(), 1, "the reading peer is kept");
    assert!(core.terminal_ids(A).await.is_empty());
    reader.abort();
}

#[tokio::test]
async fn an_open_websocket_counts_as_an_open_rpc_for_the_idle_timeout() {
    let mut config = no_phones();
    config.connections.idle_timeout = Duration::from_millis(200);
    let core = TestCore::start(config).await;
    let (mut socket, _) = connect(&core, "pipe", &[subprotocol(&TestCore::token(A))]).await;
    assert_eq!(
        next_json(&mut socket).await,
        json!({"result": {"idle": {}}})
    );
    // Well past the idle timeout (no ping either: the keepalive interval is 20 s).
    tokio::time::sleep(Duration::from_millis(800)).await;
    send_json(&mut socket, json!({"ringing": {}})).await;
    assert_eq!(
        next_result(&mut socket).await["error"]["err"],
        "NOT_INCALL",
        "the session is still up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_never_reading_websocket_flooded_with_answers_is_dropped_with_resource_exhausted() {
    let mut config = no_phones();
    config.messages_per_second = 0;
    config.outbound_queue = Some(16);
    let core = TestCore::start(config).await;
    // A small receive buffer, so that the core's writes back up soon.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(core.addr).await.unwrap();
    let url = format!("ws://{}/multipipe", core.addr);
    let (socket, _) = handshake(tcp, &url, &[subprotocol(&TestCore::token(A))]).await;
    let (mut sink, mut stream) = socket.split();
    core.wait_for_stats("registered", |s| s.terminals == 1)
        .await;
    // Every message earns an Error; none is read until the core has let go of the terminal.
    let flood = tokio::spawn(async move {
        let text = json!({"callId": "not-a-uuid", "bye": {}}).to_string();
        while sink.send(Frame::text(text.clone())).await.is_ok() {}
        std::future::pending::<()>().await;
    });
    core.wait_for_stats("dropped as a slow consumer", |s| s.terminals == 0)
        .await;
    flood.abort();
    let mut read = 0;
    let error = loop {
        let frame = tokio::time::timeout(RECV_TIMEOUT, stream.next())
            .await
            .expect("frames in time")
            .expect("open")
            .expect("a frame");
        let Frame::Text(text) = frame else { continue };
        let value: Value = serde_json::from_str(&text).unwrap();
        match value.get("error") {
            Some(error) => break error.clone(),
            None => read += 1,
        }
    };
    assert_eq!(
        error["code"],
        json!(tonic::Code::ResourceExhausted as i32),
        "{error} after {read}"
    );
    assert!(
        error["message"].as_str().unwrap().contains("slow consumer"),
        "{error}"
    );
}

#[tokio::test]
async fn wss_on_the_tls_port_alongside_grpc() {
    use tokio_rustls::rustls;
    let dir = tempfile::tempdir().unwrap();
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, signing_key.serialize_pem()).unwrap();
    let mut config = no_phones();
    config.tls = Some(webterminal_core::server::TlsFiles {
        cert: cert_path,
        key: key_path,
    });
    let core = TestCore::start(config).await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    // As a browser opening a WebSocket does.
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(core.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(client))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .expect("a TLS handshake offering http/1.1 only");
    let url = format!("wss://localhost:{}/pipe", core.addr.port());
    let (mut socket, protocol) = handshake(tls, &url, &[subprotocol(&TestCore::token(A))]).await;
    assert_eq!(protocol.as_deref(), Some("Bearer"));
    assert_eq!(
        next_json(&mut socket).await,
        json!({"result": {"idle": {}}})
    );
}

/// One plain HTTP/1.1 request on a connection of its own; returns the status code and the body.
async fn http1_get(core: &TestCore, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(core.addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        core.addr
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(RECV_TIMEOUT, tcp.read_to_end(&mut response))
        .await
        .expect("a response within 5 s")
        .unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP/1.1 response: {response:?}"));
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

#[tokio::test]
async fn plain_http1_requests_are_served_on_the_grpc_port() {
    let core = TestCore::start(no_phones()).await;
    // GET / is the softphone page (src/edge/softphone.rs), which opens /multipipe from its script.
    let (status, body) = http1_get(&core, "/").await;
    assert_eq!(status, 200);
    assert!(body.contains("/softphone/app.js"), "{body}");
    let (status, _) = http1_get(&core, "/no-such-page").await;
    assert_eq!(status, 404);
    // Without the upgrade headers, /pipe is no WebSocket and no terminal.
    let (status, _) = http1_get(&core, "/pipe").await;
    assert!((400..500).contains(&status), "{status}");
    assert_eq!(core.stats().await.terminals, 0);
}

#[tokio::test]
async fn a_websocket_past_a_terminal_limit_gets_resource_exhausted_as_the_rpc_would() {
    let mut config = no_phones();
    config.switch.max_terminals_per_msisdn = 1;
    let core = TestCore::start(config).await;
    let _grpc = core.open_over(Transport::Grpc, Kind::Multi, A).await;
    let (mut socket, _) = connect(&core, "multipipe", &[subprotocol(&TestCore::token(A))]).await;
    expect_error_then_close(&mut socket, tonic::Code::ResourceExhausted).await;
    assert_eq!(
        core.terminal_ids(A).await.len(),
        1,
        "the gRPC terminal stays"
    );
}
