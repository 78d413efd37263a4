//! What is taken out of text before it leaves for a trace backend
//! (`TRACE_CONTENT`): every configured secret value, and what looks like a
//! credential whoever configured it: bearer tokens, `token=` query values
//! (approval and callback links), bare HITL tokens (`{exp}.{64 hex}`) and
//! `sk-…` API keys. Each becomes [`REDACTED`]. [`bounded_json`] keeps an
//! attribute within a size, so a span never grows without bound.
//!
//! Hand-written scanning rather than regular expressions: four shapes, one
//! pass, no dependency.

use std::fmt;

use serde_json::Value;

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Configured values shorter than this are not searched for: a short
/// development value ("k") would blank ordinary words. Deployed keys and
/// secrets are at least 32 characters (`config::MIN_SECRET_LEN`).
pub const MIN_REDACTED_LEN: usize = 8;

/// Bearer tokens and `sk-` keys are this long at least (shorter ones are
/// ordinary words: "bearer of", "sk-1").
const MIN_TOKEN_LEN: usize = 16;

/// Appended to content that was cut.
pub const TRUNCATED: &str = "…[truncated]";

/// Replaces secrets in text; built once from the configuration
/// (`Config::redactor`).
#[derive(Clone, Default)]
pub struct Redactor {
    /// Longest first, so a secret containing another goes whole.
    secrets: Vec<String>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl Redactor {
    /// A redactor of `secrets` (values shorter than [`MIN_REDACTED_LEN`]
    /// and duplicates are dropped) and of the credential shapes.
    pub fn new<S: Into<String>>(secrets: impl IntoIterator<Item = S>) -> Redactor {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .map(Into::into)
            .map(|s| s.trim().to_string())
            .filter(|s| s.chars().count() >= MIN_REDACTED_LEN)
            .collect();
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        Redactor { secrets }
    }

    /// `text` with every secret and credential replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_string();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), REDACTED);
            }
        }
        redact_shapes(&text)
    }

    /// Redacts every string of `value` (object keys stay).
    pub fn redact_json(&self, value: &mut Value) {
        match value {
            Value::String(text) => *text = self.redact(text),
            Value::Array(items) => items.iter_mut().for_each(|item| self.redact_json(item)),
            Value::Object(fields) => fields.values_mut().for_each(|field| self.redact_json(field)),
            _ => {}
        }
    }
}

/// Replaces the credential shapes, in one pass.
fn redact_shapes(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut copied, mut i) = (0, 0);
    while i < bytes.len() {
        match credential_at(bytes, i) {
            // Matches start and end at ASCII bytes: `text` is cut at char
            // boundaries.
            Some((kept, end)) => {
                out.push_str(&text[copied..i + kept]);
                out.push_str(REDACTED);
                copied = end;
                i = end;
            }
            None => i += 1,
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// A credential starting at `i`: how many of its bytes stay (a `Bearer `
/// or `token=` prefix) and where it ends.
fn credential_at(b: &[u8], i: usize) -> Option<(usize, usize)> {
    let boundary = i == 0 || !is_word(b[i - 1]);
    let rest = &b[i..];
    if boundary && starts_with_ignore_case(rest, b"bearer ") {
        let start = run(b, i + 6, |c| c == b' ');
        let end = run(b, start, |c| c.is_ascii_alphanumeric() || b"-._~+/=".contains(&c));
        return (end - start >= MIN_TOKEN_LEN).then_some((start - i, end));
    }
    if starts_with_ignore_case(rest, b"token=") {
        let start = i + "token=".len();
        let end = run(b, start, |c| {
            !c.is_ascii_whitespace() && !b"&#\"'<>()[]{},;\\".contains(&c)
        });
        return (end > start).then_some((start - i, end));
    }
    if boundary && rest.starts_with(b"sk-") {
        let end = run(b, i + 3, |c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
        return (end - (i + 3) >= MIN_TOKEN_LEN).then_some((0, end));
    }
    if boundary && b[i].is_ascii_digit() {
        // A HITL token: `{expiry}.{64 hex}`.
        let dot = run(b, i, |c| c.is_ascii_digit());
        if b.get(dot) == Some(&b'.') {
            let end = run(b, dot + 1, |c| c.is_ascii_hexdigit());
            if end - (dot + 1) == 64 && b.get(end).is_none_or(|&c| !is_word(c)) {
                return Some((0, end));
            }
        }
    }
    None
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn starts_with_ignore_case(haystack: &[u8], prefix: &[u8]) -> bool {
    haystack.len() >= prefix.len() && haystack[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// The end of the run of bytes from `start` satisfying `accept`.
fn run(b: &[u8], start: usize, accept: impl Fn(u8) -> bool) -> usize {
    start + b[start.min(b.len())..].iter().take_while(|&&c| accept(c)).count()
}

/// `text` cut to at most `max` bytes (at a char boundary), ending in
/// [`TRUNCATED`] when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub(TRUNCATED.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{TRUNCATED}", &text[..end])
}

/// `value` as JSON text of at most `max` bytes. A longer value has its
/// strings cut (ending in [`TRUNCATED`]), to shorter lengths until it fits,
/// so it stays JSON; only when that is not enough is the text itself cut.
pub fn bounded_json(value: &Value, max: usize) -> String {
    let text = value.to_string();
    if text.len() <= max {
        return text;
    }
    let mut limit = max / 2;
    while limit >= 64 {
        let mut cut = value.clone();
        cut_strings(&mut cut, limit);
        let text = cut.to_string();
        if text.len() <= max {
            return text;
        }
        limit /= 2;
    }
    truncate(&text, max)
}

fn cut_strings(value: &mut Value, limit: usize) {
    match value {
        Value::String(text) if text.len() > limit => *text = truncate(text, limit),
        Value::Array(items) => items.iter_mut().for_each(|item| cut_strings(item, limit)),
        Value::Object(fields) => fields.values_mut().for_each(|field| cut_strings(field, limit)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn shapes(text: &str) -> String {
        Redactor::default().redact(text)
    }

    #[test]
    fn configured_secrets_are_replaced_wherever_they_are() {
        let redactor = Redactor::new(["hitl-secret-0123456789", "hitl-secret-0123456789-longer", "short"]);
        assert_eq!(
            redactor.redact("a hitl-secret-0123456789-longer and hitl-secret-0123456789x, short"),
            "a [REDACTED] and [REDACTED]x, short",
            "the longer secret goes whole; values under 8 characters are not searched"
        );
        assert_eq!(redactor.redact("nothing here"), "nothing here");
        assert_eq!(
            format!("{redactor:?}"),
            "Redactor { secrets: 2 }",
            "Debug shows no value"
        );
    }

    #[test]
    fn bearer_tokens_keep_their_scheme() {
        assert_eq!(
            shapes("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc-def_123 sent"),
            "Authorization: Bearer [REDACTED] sent"
        );
        assert_eq!(shapes("bearer  abcdefghijklmnop1234"), "bearer  [REDACTED]");
        for ordinary in [
            "the bearer of bad news",
            "Bearer short",
            "a cupbearer abcdefghijklmnop1234",
        ] {
            assert_eq!(shapes(ordinary), ordinary);
        }
    }

    #[test]
    fn token_query_values_are_replaced_up_to_the_next_delimiter() {
        let link = "https://mw.example.com/v1/hitl/approve/run_a/ideate?token=1796677328.ab12cd&x=1";
        assert_eq!(
            shapes(&format!("approve: {link}.")),
            "approve: https://mw.example.com/v1/hitl/approve/run_a/ideate?token=[REDACTED]&x=1."
        );
        assert_eq!(
            shapes("(see /cb?access_token=abc\"def) TOKEN=xyz"),
            "(see /cb?access_token=[REDACTED]\"def) TOKEN=[REDACTED]"
        );
        assert_eq!(shapes("token= alone"), "token= alone");
    }

    #[test]
    fn sk_keys_and_bare_hitl_tokens_are_replaced() {
        assert_eq!(shapes("key sk-proj-AbCdEf0123456789_xyz, ok"), "key [REDACTED], ok");
        for ordinary in [
            "sk-short",
            "task-abcdefghijklmnopqrst",
            "risk-assessment-of-the-whole-plan",
        ] {
            assert_eq!(shapes(ordinary), ordinary);
        }
        let token = format!("1796677328.{}", "ab12".repeat(16));
        assert_eq!(shapes(&format!("the token is {token}!")), "the token is [REDACTED]!");
        let longer = format!("1796677328.{}", "ab12".repeat(17));
        assert_eq!(shapes(&longer), longer, "not a HITL token's 64 hex digits");
        assert_eq!(shapes("12 clips, 8.0 s each"), "12 clips, 8.0 s each");
    }

    #[test]
    fn multibyte_text_around_credentials_survives() {
        assert_eq!(
            shapes("é token=ü&é Bearer ééé sk-ñ"),
            "é token=[REDACTED]&é Bearer ééé sk-ñ"
        );
    }

    #[test]
    fn json_strings_are_redacted_and_keys_kept() {
        let redactor = Redactor::new(["sup3r-secret-value"]);
        let mut value = json!({"messages": [{"role": "user", "content": "use sup3r-secret-value"}], "n": 1});
        redactor.redact_json(&mut value);
        assert_eq!(
            value,
            json!({"messages": [{"role": "user", "content": "use [REDACTED]"}], "n": 1})
        );
    }

    #[test]
    fn bounded_json_stays_json_within_the_bound() {
        let small = json!({"a": "b"});
        assert_eq!(bounded_json(&small, 100), r#"{"a":"b"}"#);

        let big = json!({"messages": [{"content": "x".repeat(40_000)}, {"content": "short"}]});
        let text = bounded_json(&big, 16 * 1024);
        assert!(text.len() <= 16 * 1024, "{}", text.len());
        let parsed: Value = serde_json::from_str(&text).expect("still JSON");
        let first = parsed["messages"][0]["content"].as_str().unwrap();
        assert!(first.ends_with(TRUNCATED) && first.starts_with("xxx"));
        assert_eq!(parsed["messages"][1]["content"], "short");

        // Too many strings to fit even when cut: the text is cut.
        let many = Value::Array((0..10_000).map(|i| json!(i.to_string())).collect());
        let text = bounded_json(&many, 1024);
        assert!(text.len() <= 1024 && text.ends_with(TRUNCATED));
    }

    #[test]
    fn truncate_cuts_at_a_char_boundary() {
        assert_eq!(truncate("abc", 3), "abc");
        let cut = truncate(&"é".repeat(100), 40);
        assert!(cut.len() <= 40 && cut.ends_with(TRUNCATED), "{cut}");
    }
}
