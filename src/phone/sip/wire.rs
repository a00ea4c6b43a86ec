//! Rules on the raw text of the datagrams the trunk's socket carries ([`super::socket`]), as pure
//! functions: what a datagram is (a request, a response, its Call-ID), and the answer to an
//! outgoing delayed-offer INVITE's 2xx rewritten into its ACK.

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
}
