//! Rules on the raw text of the datagrams the trunk's socket carries ([`super::socket`]), as pure
//! functions: what a datagram is (a request, a response, its Call-ID), the answer to an outgoing
//! delayed-offer INVITE's 2xx rewritten into its ACK, and the stateless answer to a request the
//! stack never sees ([`super::screen`]).

/// The first line of a SIP message, without its line end.
fn first_line(text: &str) -> &str {
    text.split(['\r', '\n']).next().unwrap_or("")
}

/// The method of a request (`INVITE`, `ACK`, ...: the first word of its request line), or `None`
/// for a response (`SIP/2.0 ...`) or an empty message.
pub fn method_of(text: &str) -> Option<&str> {
    let line = first_line(text);
    if line.starts_with("SIP/") {
        return None;
    }
    line.split(' ').next().filter(|m| !m.is_empty())
}

/// The header section of `text` (before the blank line), one header a line; folded lines (RFC 3261
/// section 7.3.1) are left as they are (none of the headers read here is folded in practice).
fn header_lines(text: &str) -> impl Iterator<Item = &str> {
    let head = match text.find("\r\n\r\n") {
        Some(end) => &text[..end],
        None => text.split("\n\n").next().unwrap_or(text),
    };
    head.lines().skip(1).map(|l| l.trim_end_matches('\r'))
}

/// The value of the first header named `name` or its compact form `compact` (RFC 3261 section
/// 7.3.3), trimmed; names are case-insensitive.
pub fn header_value<'a>(text: &'a str, name: &str, compact: Option<&str>) -> Option<&'a str> {
    header_lines(text).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        let n = n.trim();
        let matches =
            n.eq_ignore_ascii_case(name) || compact.is_some_and(|c| n.eq_ignore_ascii_case(c));
        matches.then(|| v.trim())
    })
}

/// The Call-ID of a message (`Call-ID:` or `i:`).
pub fn call_id_of(text: &str) -> Option<&str> {
    header_value(text, "Call-ID", Some("i")).filter(|v| !v.is_empty())
}

/// `ack` (an ACK the stack built, with no body) carrying `sdp` as its body: the answer of a
/// delayed-offer exchange (RFC 3261 section 13.2.1, RFC 3264 section 4: the offer came in the 2xx,
/// the answer goes in the ACK). Any `Content-Type` and `Content-Length` (or their compact forms
/// `c` and `l`) it had are replaced.
pub fn ack_with_body(ack: &str, sdp: &str) -> String {
    let head = match ack.find("\r\n\r\n") {
        Some(end) => &ack[..end],
        None => ack.trim_end(),
    };
    let mut out = String::with_capacity(head.len() + sdp.len() + 64);
    for (i, line) in head.split("\r\n").enumerate() {
        if i > 0 {
            let name = line.split(':').next().unwrap_or("").trim();
            let body_header = ["Content-Type", "Content-Length", "c", "l"]
                .iter()
                .any(|h| name.eq_ignore_ascii_case(h));
            if body_header {
                continue;
            }
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Content-Type: application/sdp\r\n");
    out.push_str(&format!("Content-Length: {}\r\n\r\n", sdp.len()));
    out.push_str(sdp);
    out
}

/// The request methods rsipstack's parser knows: RFC 3261's and those of its extensions (PRACK,
/// SUBSCRIBE/NOTIFY, PUBLISH, INFO, REFER, MESSAGE, UPDATE).
pub const KNOWN_METHODS: [&str; 14] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "REGISTER",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "PUBLISH",
    "INFO",
    "REFER",
    "MESSAGE",
    "UPDATE",
];

/// Whether `text` starts with a well-formed request line (`METHOD uri SIP/2.0`, the method a token
/// of capital letters) whose method is none of [`KNOWN_METHODS`].
pub fn has_unknown_method(text: &str) -> bool {
    let mut parts = first_line(text).split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    !method.is_empty()
        && method.bytes().all(|b| b.is_ascii_uppercase())
        && !uri.is_empty()
        && version == "SIP/2.0"
        && !KNOWN_METHODS.contains(&method)
}

/// What is wrong with a request (`None`: nothing, or `text` is a response) that rsipstack's parser
/// lets through but its transactions cannot use (RFC 3261 section 8.1.1): a missing Via, From, To,
/// Call-ID or CSeq; a CSeq that is not a number and the request's method; a Max-Forwards that is
/// not a number; a Content-Length that is not a number or is longer than the body. The answer
/// names the header, for the reason phrase of a 400.
pub fn request_fault(text: &str) -> Option<&'static str> {
    let method = method_of(text)?;
    for (name, compact) in [
        ("Via", Some("v")),
        ("From", Some("f")),
        ("To", Some("t")),
        ("Call-ID", Some("i")),
        ("CSeq", None),
    ] {
        if header_value(text, name, compact).is_none_or(str::is_empty) {
            return Some(name);
        }
    }
    let cseq = header_value(text, "CSeq", None).unwrap_or("");
    let cseq_ok = cseq.split_once(' ').is_some_and(|(number, m)| {
        number.parse::<u32>().is_ok() && m.trim().eq_ignore_ascii_case(method)
    });
    if !cseq_ok {
        return Some("CSeq");
    }
    if header_value(text, "Max-Forwards", None).is_some_and(|v| v.parse::<u8>().is_err()) {
        return Some("Max-Forwards");
    }
    if let Some(length) = header_value(text, "Content-Length", Some("l")) {
        let body = text.find("\r\n\r\n").map_or(0, |end| text.len() - end - 4);
        if length.parse::<usize>().map_or(true, |n| n > body) {
            return Some("Content-Length");
        }
    }
    None
}

/// A final response to `request` built from its text alone, for a request refused before any
/// transaction exists (RFC 3261 section 8.2.6: the status line, then the request's Via headers in
/// order, From, To with a tag added when it has none, Call-ID and CSeq, then `extra`). `None` when
/// one of those headers is missing (or `request` is a response): nothing can answer it, and it is
/// dropped. Long and compact header names alike (`v`, `f`, `t`, `i`).
pub fn stateless_response(
    request: &str,
    status: u16,
    reason: &str,
    extra: &[(&str, &str)],
) -> Option<String> {
    method_of(request)?;
    let vias: Vec<&str> = header_lines(request)
        .filter_map(|line| {
            let (n, v) = line.split_once(':')?;
            let n = n.trim();
            (n.eq_ignore_ascii_case("Via") || n.eq_ignore_ascii_case("v")).then(|| v.trim())
        })
        .collect();
    if vias.is_empty() {
        return None;
    }
    let from = header_value(request, "From", Some("f"))?;
    let to = header_value(request, "To", Some("t"))?;
    let call_id = call_id_of(request)?;
    let cseq = header_value(request, "CSeq", None)?;
    let mut out = format!("SIP/2.0 {status} {reason}\r\n");
    for via in vias {
        out.push_str(&format!("Via: {via}\r\n"));
    }
    out.push_str(&format!("From: {from}\r\n"));
    if to.contains(";tag=") {
        out.push_str(&format!("To: {to}\r\n"));
    } else {
        out.push_str(&format!("To: {to};tag=wt-refused\r\n"));
    }
    out.push_str(&format!("Call-ID: {call_id}\r\nCSeq: {cseq}\r\n"));
    for (name, value) in extra {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACK: &str = "ACK sip:phone@127.0.0.1:5090 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n\
        Call-ID: wt-1@webterminal-core\r\n\
        From: <sip:+1@127.0.0.1>;tag=a\r\n\
        To: <sip:+2@127.0.0.1>;tag=b\r\n\
        CSeq: 1 ACK\r\n\
        Content-Length: 0\r\n\r\n";

    #[test]
    fn methods_and_call_ids() {
        assert_eq!(method_of(ACK), Some("ACK"));
        assert_eq!(method_of("SIP/2.0 200 OK\r\nCall-ID: x\r\n\r\n"), None);
        assert_eq!(method_of(""), None);
        assert_eq!(call_id_of(ACK), Some("wt-1@webterminal-core"));
        assert_eq!(
            call_id_of("BYE sip:x SIP/2.0\r\ni: short\r\n\r\n"),
            Some("short")
        );
        assert_eq!(
            call_id_of("BYE sip:x SIP/2.0\r\n\r\nCall-ID: body\r\n"),
            None
        );
        assert_eq!(call_id_of("BYE sip:x SIP/2.0\nCall-ID: lf\n\n"), Some("lf"));
    }

    #[test]
    fn an_ack_gets_the_answer_as_its_body() {
        let sdp = "v=0\r\ns=answer\r\n";
        let with = ack_with_body(ACK, sdp);
        assert!(
            with.starts_with("ACK sip:phone@127.0.0.1:5090 SIP/2.0\r\n"),
            "{with}"
        );
        assert!(with.contains("CSeq: 1 ACK\r\n"));
        assert!(!with.contains("Content-Length: 0"), "{with}");
        assert!(with.ends_with(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        )));
        assert_eq!(with.matches("Content-Type").count(), 1);
        // Compact forms are replaced too.
        let compact = "ACK sip:x SIP/2.0\r\ni: c\r\nl: 0\r\nc: text/plain\r\n\r\n";
        let with = ack_with_body(compact, "v=0\r\n");
        assert!(
            !with.contains("l: 0") && !with.contains("text/plain"),
            "{with}"
        );
        assert!(with.contains("i: c\r\n"));
    }

    #[test]
    fn a_stateless_response_copies_what_rfc_3261_asks() {
        let invite = "INVITE sip:+2@127.0.0.1 SIP/2.0\r\n\
            Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa\r\n\
            v: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKb\r\n\
            f: <sip:+1@10.0.0.1>;tag=x\r\n\
            To: <sip:+2@127.0.0.1>\r\n\
            i: call-1\r\n\
            CSeq: 7 INVITE\r\n\
            Content-Length: 0\r\n\r\n";
        let response =
            stateless_response(invite, 503, "Service Unavailable", &[("Retry-After", "1")])
                .unwrap();
        assert_eq!(
            response,
            "SIP/2.0 503 Service Unavailable\r\n\
             Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa\r\n\
             Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKb\r\n\
             From: <sip:+1@10.0.0.1>;tag=x\r\n\
             To: <sip:+2@127.0.0.1>;tag=wt-refused\r\n\
             Call-ID: call-1\r\nCSeq: 7 INVITE\r\nRetry-After: 1\r\n\
             Content-Length: 0\r\n\r\n"
        );
        // A To that has its tag keeps it.
        let tagged = invite.replace("To: <sip:+2@127.0.0.1>", "To: <sip:+2@127.0.0.1>;tag=y");
        assert!(stateless_response(&tagged, 400, "Bad Request", &[])
            .unwrap()
            .contains("To: <sip:+2@127.0.0.1>;tag=y\r\n"));
        // Nothing to answer: no Via, no CSeq, a response.
        assert_eq!(
            stateless_response(
                &invite.replace("Via:", "X-Via:").replace("v:", "X-v:"),
                400,
                "Bad Request",
                &[]
            ),
            None
        );
        assert_eq!(
            stateless_response(&invite.replace("CSeq", "X-CSeq"), 400, "Bad Request", &[]),
            None
        );
        assert_eq!(
            stateless_response("SIP/2.0 200 OK\r\n\r\n", 400, "Bad Request", &[]),
            None
        );
    }

    #[test]
    fn request_faults_name_the_header() {
        let invite = "INVITE sip:+2@127.0.0.1 SIP/2.0\r\n\
            Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa\r\n\
            From: <sip:+1@10.0.0.1>;tag=x\r\n\
            To: <sip:+2@127.0.0.1>\r\n\
            Call-ID: call-1\r\n\
            CSeq: 7 INVITE\r\n\
            Max-Forwards: 70\r\n\
            Content-Length: 4\r\n\r\nv=0\n";
        assert_eq!(request_fault(invite), None);
        assert_eq!(request_fault("SIP/2.0 200 OK\r\n\r\n"), None);
        for (broken, fault) in [
            (invite.replace("Call-ID: call-1\r\n", ""), "Call-ID"),
            (invite.replace("Via:", "X-Via:"), "Via"),
            (
                invite.replace("CSeq: 7 INVITE", "CSeq: seven INVITE"),
                "CSeq",
            ),
            (invite.replace("CSeq: 7 INVITE", "CSeq: 7 BYE"), "CSeq"),
            (invite.replace("CSeq: 7 INVITE", "CSeq: 7"), "CSeq"),
            (
                invite.replace("Max-Forwards: 70", "Max-Forwards: many"),
                "Max-Forwards",
            ),
            (
                invite.replace("Content-Length: 4", "Content-Length: 40"),
                "Content-Length",
            ),
            (
                invite.replace("Content-Length: 4", "Content-Length: x"),
                "Content-Length",
            ),
        ] {
            assert_eq!(request_fault(&broken), Some(fault), "{broken}");
        }
    }
}
