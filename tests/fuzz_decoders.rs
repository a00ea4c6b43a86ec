//! Fuzzing, on stable Rust, of every decoder that faces the network: a terminal's protobuf
//! messages and the checks of PROTOCOL.md section 6 behind them, the browsers' protobuf-JSON
//! WebSocket frames (section 11), access tokens (section 1), SDP, E.164 numbers and the routing file
//! (section 10). None may panic, whatever arrives; each must answer with its error.
//!
//! Inputs are proptest's: mutations of a corpus kept in the repository (`tests/fixtures/fuzz/`,
//! `tests/fixtures/sdp/`, and tokens minted here) — bit flips, insertions, deletions, truncations,
//! repeats and splices of bytes, and for JSON, values replaced by hostile ones anywhere in the
//! tree — and plain arbitrary bytes. `FUZZ_CASES` sets the cases per decoder (default 10,000: seconds in
//! CI); a long run is `FUZZ_CASES=1000000 cargo test --release --test fuzz_decoders`.
//! A failure prints its shrunk input: once fixed, keep it as a test of its own here.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use webterminal_core::auth::{mint_client_token, mint_token, Verifier, VerifyingKey};
use webterminal_core::core::{Msisdn, PipeKind, Sdp};
use webterminal_core::proto::webterminal::WebTerminalMessage;
use webterminal_core::server::routing_file;
use webterminal_core::wire::{parse_request, Limits};

const SECRET: &[u8] = b"fuzz-secret";

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// Runs `check` on `cases()` inputs from `strategy`; a panic or a failed check fails the test with
/// the shrunk input.
fn fuzz<S: Strategy>(strategy: S, check: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    if let Err(e) = runner.run(&strategy, check) {
        panic!("{e}");
    }
}

/// The files of `tests/fixtures/<dir>`, as bytes.
fn corpus(dir: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e != "md"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| std::fs::read(path).unwrap())
        .collect()
}

/// One edit of a byte string.
#[derive(Clone, Debug)]
enum Edit {
    FlipBit {
        at: usize,
        bit: u8,
    },
    Insert {
        at: usize,
        byte: u8,
    },
    Delete {
        at: usize,
        len: usize,
    },
    Truncate {
        at: usize,
    },
    Repeat {
        at: usize,
        len: usize,
        times: usize,
    },
    Splice {
        at: usize,
        from: usize,
        other: usize,
    },
}

fn edit() -> impl Strategy<Value = Edit> {
    let at = any::<usize>();
    prop_oneof![
        (at, 0u8..8).prop_map(|(at, bit)| Edit::FlipBit { at, bit }),
        (at, any::<u8>()).prop_map(|(at, byte)| Edit::Insert { at, byte }),
        (at, 1usize..64).prop_map(|(at, len)| Edit::Delete { at, len }),
        at.prop_map(|at| Edit::Truncate { at }),
        (at, 1usize..32, 2usize..64).prop_map(|(at, len, times)| Edit::Repeat { at, len, times }),
        (at, any::<usize>(), any::<usize>()).prop_map(|(at, from, other)| Edit::Splice {
            at,
            from,
            other
        }),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit], corpus: &[Vec<u8>]) -> Vec<u8> {
    for edit in edits {
        let len = bytes.len();
        let pos = |at: usize| if len == 0 { 0 } else { at % (len + 1) };
        match *edit {
            Edit::FlipBit { at, bit } if len > 0 => bytes[at % len] ^= 1 << bit,
            Edit::FlipBit { .. } => {}
            Edit::Insert { at, byte } => bytes.insert(pos(at), byte),
            Edit::Delete { at, len: n } => {
                let start = pos(at);
                bytes.drain(start..(start + n).min(len));
            }
            Edit::Truncate { at } => bytes.truncate(pos(at)),
            Edit::Repeat { at, len: n, times } => {
                let start = pos(at);
                let piece = bytes[start..(start + n).min(len)].to_vec();
                for _ in 0..times {
                    bytes.splice(start..start, piece.iter().copied());
                }
            }
            Edit::Splice { at, from, other } => {
                let other = &corpus[other % corpus.len()];
                let from = if other.is_empty() {
                    0
                } else {
                    from % other.len()
                };
                let start = pos(at);
                bytes.splice(start..start, other[from..].iter().copied());
            }
        }
    }
    bytes
}

/// A corpus entry with up to eight edits, or (one time in four) arbitrary bytes.
fn bytes_from(corpus: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let seeds = corpus.clone();
    prop_oneof![
        3 => (any::<prop::sample::Index>(), prop::collection::vec(edit(), 0..8))
            .prop_map(move |(seed, edits)| {
                apply(seeds[seed.index(seeds.len())].clone(), &edits, &seeds)
            }),
        1 => prop::collection::vec(any::<u8>(), 0..512),
    ]
}

fn text_from(corpus: Vec<Vec<u8>>) -> impl Strategy<Value = String> {
    bytes_from(corpus).prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

/// Values a hostile client would try in a JSON field.
fn hostile_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        prop::sample::select(vec![
            "",
            "+",
            "+0",
            "4799990001",
            "+4799990001",
            "+47999900011234567",
            "0047",
            "ab",
            "00000000-0000-0000-0000-000000000000",
            "not-a-uuid",
            "DECLINED",
            "NORMAL_CLEARING",
            "UNKNOWN_REASON",
            "v=0\r\n",
            "\u{0}",
            "\u{feff}+47",
            "😀",
            "%2B47",
        ])
        .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        "[0-9+]{0,20}".prop_map(Value::from),
        Just(Value::from("x".repeat(70_000))),
        Just(Value::Array(vec![])),
        Just(serde_json::json!({})),
        Just(serde_json::json!({"e164": "+4799990009"})),
    ]
}

/// Replaces the value at the `choice`-th node of `tree` (in document order) with `value`.
fn replace_node(tree: &mut Value, choice: usize, value: Value) {
    fn count(v: &Value) -> usize {
        1 + match v {
            Value::Object(map) => map.values().map(count).sum(),
            Value::Array(items) => items.iter().map(count).sum(),
            _ => 0,
        }
    }
    fn walk(v: &mut Value, mut n: usize, value: Value) {
        if n == 0 {
            *v = value;
            return;
        }
        n -= 1;
        let children: Vec<&mut Value> = match v {
            Value::Object(map) => map.values_mut().collect(),
            Value::Array(items) => items.iter_mut().collect(),
            _ => return,
        };
        for child in children {
            let size = count(child);
            if n < size {
                return walk(child, n, value);
            }
            n -= size;
        }
    }
    let total = count(tree);
    walk(tree, choice % total, value);
}

/// A WebSocket frame: a corpus frame with values replaced anywhere, or with its bytes edited.
fn websocket_frame() -> impl Strategy<Value = String> {
    let corpus = corpus("fuzz/websocket");
    let trees: Vec<Value> = corpus
        .iter()
        .map(|bytes| serde_json::from_slice(bytes).expect("the corpus is JSON"))
        .collect();
    let structured = (
        any::<prop::sample::Index>(),
        prop::collection::vec((any::<usize>(), hostile_value()), 1..4),
        prop::collection::vec((any::<usize>(), "[a-zA-Z_]{1,12}", hostile_value()), 0..2),
    )
        .prop_map(move |(seed, replacements, additions)| {
            let mut tree = trees[seed.index(trees.len())].clone();
            for (at, value) in replacements {
                replace_node(&mut tree, at, value);
            }
            if let Value::Object(map) = &mut tree {
                for (_, key, value) in additions {
                    map.insert(key, value);
                }
            }
            tree.to_string()
        });
    prop_oneof![3 => structured, 1 => text_from(corpus)]
}

/// Whatever a terminal sends, decoding and the checks of section 6 answer without panicking.
/// Returns whether the message passed them, as a Pipe's or a MultiPipe's.
fn check_request(message: WebTerminalMessage) -> bool {
    let limits = Limits::default();
    let mut accepted = false;
    for kind in [PipeKind::Pipe, PipeKind::MultiPipe] {
        accepted |= parse_request(kind, message.clone(), &limits).is_ok();
    }
    accepted
}

/// Counts how far inputs got, so that a run that never reaches the checks fails.
#[derive(Default)]
struct Reach {
    decoded: AtomicUsize,
    accepted: AtomicUsize,
}

impl Reach {
    fn saw(&self, message: WebTerminalMessage) {
        self.decoded.fetch_add(1, Ordering::Relaxed);
        if check_request(message) {
            self.accepted.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Some inputs decoded and some passed every check.
    fn assert_deep(&self) {
        let (decoded, accepted) = (
            self.decoded.load(Ordering::Relaxed),
            self.accepted.load(Ordering::Relaxed),
        );
        assert!(
            decoded > 0 && accepted > 0,
            "the inputs never reached the checks: {decoded} decoded, {accepted} accepted"
        );
    }
}

#[test]
fn websocket_frames() {
    let reach = Reach::default();
    fuzz(websocket_frame(), |frame| {
        if let Ok(message) = serde_json::from_str::<WebTerminalMessage>(&frame) {
            reach.saw(message);
        }
        Ok(())
    });
    reach.assert_deep();
}

#[test]
fn protobuf_messages() {
    use prost::Message as _;
    let corpus: Vec<Vec<u8>> = corpus("fuzz/websocket")
        .iter()
        .map(|json| {
            serde_json::from_slice::<WebTerminalMessage>(json)
                .expect("the corpus decodes")
                .encode_to_vec()
        })
        .collect();
    let reach = Reach::default();
    fuzz(bytes_from(corpus), |bytes| {
        if let Ok(message) = WebTerminalMessage::decode(bytes.as_slice()) {
            reach.saw(message);
        }
        Ok(())
    });
    reach.assert_deep();
}

#[test]
fn sdp() {
    let limit = Limits::default().max_sdp_bytes;
    fuzz(text_from(corpus("sdp")), |text| {
        if Sdp::parse(&text, limit).is_ok() {
            prop_assert!(text.len() <= limit, "an SDP over the limit was accepted");
        }
        Ok(())
    });
}

#[test]
fn access_tokens() {
    let number = Msisdn::parse("+4799990001").unwrap();
    let scope = webterminal_core::auth::REQUIRED_SCOPE;
    let tokens: Vec<Vec<u8>> = vec![
        mint_token(SECRET, &number, scope, Duration::from_secs(600)).into_bytes(),
        mint_client_token(
            SECRET,
            "fuzz-client",
            std::slice::from_ref(&number),
            scope,
            Duration::from_secs(600),
        )
        .into_bytes(),
        mint_token(b"another-secret", &number, scope, Duration::from_secs(600)).into_bytes(),
    ];
    let verifier = Verifier::new(vec![VerifyingKey::hs256(SECRET)], None, None);
    let genuine: Vec<String> = tokens[..2]
        .iter()
        .map(|t| String::from_utf8(t.clone()).unwrap())
        .collect();
    fuzz(text_from(tokens), |token| {
        // A token that verifies is one this test minted with the secret, or one equal to it in
        // every byte that the signature covers (base64url's spare bits aside).
        if verifier.verify_token(&token).is_ok() {
            prop_assert!(
                genuine.iter().any(|g| g.len() == token.len()),
                "a forged token verified: {token:?}"
            );
        }
        Ok(())
    });
}

#[test]
fn msisdns() {
    let corpus: Vec<Vec<u8>> = ["+4799990001", "4799990001", "+1", "+999999999999999"]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    fuzz(text_from(corpus), |text| {
        for number in [Msisdn::parse(&text), Msisdn::parse_lenient(&text)]
            .into_iter()
            .flatten()
        {
            let again = Msisdn::parse(number.as_str());
            prop_assert_eq!(again.as_ref().ok(), Some(&number), "{:?} round-trips", text);
        }
        Ok(())
    });
}

#[test]
fn routing_files() {
    fuzz(text_from(corpus("fuzz/routing")), |text| {
        let _ = routing_file::parse(&text);
        Ok(())
    });
}
