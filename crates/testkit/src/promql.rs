//! Just enough PromQL to find the selectors and label names of an
//! expression (dashboards and alerts), Grafana's variables, and the
//! Prometheus text exposition of a scrape.

use std::collections::{BTreeMap, BTreeSet};

/// Grafana's variables replaced: `$__rate_interval`, `$__interval` and
/// `$__range` by durations, every other `$name`/`${name}` by `values[name]`
/// or `.*` (the dashboard's "All").
pub fn substitute(expr: &str, durations: (&str, &str), values: &BTreeMap<&str, &str>) -> String {
    let (interval, range) = durations;
    let mut out = String::new();
    let mut rest = expr;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, len) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced.find('}').expect("${...} is closed");
            (&braced[..end], end + 2)
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        out.push_str(match name {
            "__rate_interval" | "__interval" => interval,
            "__range" => range,
            other => values.get(other).copied().unwrap_or(".*"),
        });
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    Ident(String),
    Str(String),
    Number,
    Punct(String),
}

pub fn tokens(expr: &str) -> Vec<Token> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '"' || c == '\'' || c == '`' {
            let mut value = String::new();
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' && c != '`' && i + 1 < chars.len() {
                    i += 1;
                }
                value.push(chars[i]);
                i += 1;
            }
            i += 1;
            out.push(Token::Str(value));
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            out.push(Token::Number);
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c == '[' {
            // Ranges and subqueries: durations only.
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            if ["!=", "=~", "!~", "==", ">=", "<="].contains(&two.as_str()) {
                out.push(Token::Punct(two));
                i += 2;
            } else {
                out.push(Token::Punct(c.to_string()));
                i += 1;
            }
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
pub struct Matcher {
    pub label: String,
    pub op: String,
    pub value: String,
}

#[derive(Debug, Default)]
pub struct References {
    /// `(metric name as written, matchers)`.
    pub selectors: Vec<(String, Vec<Matcher>)>,
    /// Labels of `by`, `without`, `on`, `ignoring`, `group_left`, `group_right`.
    pub grouping: Vec<String>,
}

pub const GROUPING: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];
pub const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
    "atan2",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

pub fn references(expr: &str) -> References {
    let tokens = tokens(expr);
    let mut refs = References::default();
    let punct = |i: usize, p: &str| matches!(tokens.get(i), Some(Token::Punct(x)) if x == p);
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Ident(name) if GROUPING.contains(&name.as_str()) && punct(i + 1, "(") => {
                i += 2;
                while i < tokens.len() && !punct(i, ")") {
                    if let Token::Ident(label) = &tokens[i] {
                        refs.grouping.push(label.clone());
                    }
                    i += 1;
                }
            }
            // A function call, or an aggregation with its grouping first (`sum by (x) (...)`).
            Token::Ident(_) if punct(i + 1, "(") => {}
            Token::Ident(_) if matches!(tokens.get(i + 1), Some(Token::Ident(g)) if g == "by" || g == "without") => {}
            Token::Ident(name) if name == "offset" => i += 1,
            Token::Ident(name) if KEYWORDS.contains(&name.as_str()) => {}
            Token::Ident(name) => {
                let mut matchers = Vec::new();
                if punct(i + 1, "{") {
                    i = matchers_from(&tokens, i + 2, &mut matchers);
                }
                refs.selectors.push((name.clone(), matchers));
            }
            Token::Punct(p) if p == "{" => {
                let mut matchers = Vec::new();
                i = matchers_from(&tokens, i + 1, &mut matchers);
                let name = matchers
                    .iter()
                    .find(|m| m.label == "__name__" && m.op == "=")
                    .map(|m| m.value.clone())
                    .unwrap_or_default();
                refs.selectors.push((name, matchers));
            }
            _ => {}
        }
        i += 1;
    }
    refs
}

/// Reads `label op "value"` pairs from `i` to the closing `}`; returns its index.
pub fn matchers_from(tokens: &[Token], mut i: usize, into: &mut Vec<Matcher>) -> usize {
    while i < tokens.len() {
        match (&tokens[i], tokens.get(i + 1), tokens.get(i + 2)) {
            (Token::Punct(p), _, _) if p == "}" => return i,
            (Token::Ident(label), Some(Token::Punct(op)), Some(Token::Str(value))) => {
                into.push(Matcher {
                    label: label.clone(),
                    op: op.clone(),
                    value: value.clone(),
                });
                i += 3;
            }
            _ => i += 1,
        }
    }
    i
}

/// The values a matcher can match, when it lists them: `a` or `a|b|c`.
pub fn listed_values(matcher: &Matcher) -> Option<Vec<String>> {
    match matcher.op.as_str() {
        "=" => Some(vec![matcher.value.clone()]),
        "=~" if matcher
            .value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '|') =>
        {
            Some(matcher.value.split('|').map(str::to_string).collect())
        }
        _ => None,
    }
}

#[derive(Debug, Default)]
pub struct Exported {
    pub kind: String,
    pub labels: BTreeSet<String>,
    /// The label sets of the samples (histograms: of `_count`).
    pub series: Vec<BTreeMap<String, String>>,
    /// Finite bucket bounds of a histogram.
    pub buckets: Vec<f64>,
}

pub type Scrape = BTreeMap<String, Exported>;

pub fn parse_exposition(text: &str) -> Scrape {
    let mut scrape = Scrape::new();
    let mut kinds: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            kinds.insert(name.to_string(), kind.trim().to_string());
            scrape.entry(name.to_string()).or_default().kind = kind.trim().to_string();
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let sample = &line[..name_end];
        let labels = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end + 1..])
        } else {
            BTreeMap::new()
        };
        let (name, suffix) = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                sample
                    .strip_suffix(s)
                    .filter(|base| kinds.get(*base).is_some_and(|k| k == "histogram"))
                    .map(|base| (base.to_string(), *s))
            })
            .unwrap_or((sample.to_string(), ""));
        let exported = scrape.entry(name).or_default();
        for label in labels.keys().filter(|l| !(suffix == "_bucket" && *l == "le")) {
            exported.labels.insert(label.clone());
        }
        match suffix {
            "_bucket" => {
                if let Some(bound) = labels.get("le").and_then(|le| le.parse::<f64>().ok())
                    && bound.is_finite()
                    && !exported.buckets.contains(&bound)
                {
                    exported.buckets.push(bound);
                }
            }
            "" | "_count" => exported.series.push(labels),
            _ => {}
        }
    }
    scrape
}

pub fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    loop {
        while i < chars.len() && (chars[i] == ',' || chars[i] == ' ') {
            i += 1;
        }
        if i >= chars.len() || chars[i] == '}' {
            return labels;
        }
        let start = i;
        while chars[i] != '=' {
            i += 1;
        }
        let name: String = chars[start..i].iter().collect();
        i += 2; // ="
        let mut value = String::new();
        while chars[i] != '"' {
            if chars[i] == '\\' {
                i += 1;
                value.push(if chars[i] == 'n' { '\n' } else { chars[i] });
            } else {
                value.push(chars[i]);
            }
            i += 1;
        }
        i += 1;
        labels.insert(name.trim().to_string(), value);
    }
}
