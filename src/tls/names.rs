//! Names a server certificate covers: each given name is sorted into a DNS name or an IP
//! address, the way mkcert does, and anything that is neither is refused.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::Serialize;

/// One subject alternative name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum SubjectName {
    Dns(String),
    Ip(IpAddr),
}

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid name {name:?}: {reason}")]
pub struct InvalidName {
    pub name: String,
    pub reason: &'static str,
}

impl SubjectName {
    /// Classify `text` as an IP address (v4, v6, or v6 in brackets) or a DNS name
    /// (letters, digits, `-`, `_`; a `*.` wildcard only as the whole leftmost label).
    pub fn parse(text: &str) -> Result<Self, InvalidName> {
        let invalid = |reason| InvalidName {
            name: text.to_string(),
            reason,
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(invalid("empty"));
        }
        if trimmed != text {
            return Err(invalid("leading or trailing white space"));
        }
        let unbracketed = text
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .unwrap_or(text);
        if let Ok(ip) = IpAddr::from_str(unbracketed) {
            return Ok(SubjectName::Ip(ip));
        }
        if unbracketed != text {
            return Err(invalid("brackets hold only an IPv6 address"));
        }
        if text.contains("://") {
            return Err(invalid("a name, not a URL (drop the scheme)"));
        }
        if text.contains(':') {
            return Err(invalid("a name or IP address without a port"));
        }
        if text.contains('/') {
            return Err(invalid("a single address, not a network"));
        }
        validate_dns(text).map_err(invalid)?;
        Ok(SubjectName::Dns(text.to_ascii_lowercase()))
    }

    /// Does this SAN cover the reference name `wanted` (as a TLS client checks it)?
    pub fn covers(&self, wanted: &SubjectName) -> bool {
        match (self, wanted) {
            (SubjectName::Ip(have), SubjectName::Ip(want)) => have == want,
            (SubjectName::Dns(have), SubjectName::Dns(want)) => dns_matches(have, want),
            _ => false,
        }
    }
}

fn validate_dns(name: &str) -> Result<(), &'static str> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    if bare.len() != name.len() {
        return Err("no trailing dot");
    }
    if name.len() > 253 {
        return Err("longer than 253 characters");
    }
    let (wildcard, rest) = match name.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, name),
    };
    if rest.contains('*') {
        return Err("a wildcard may only be the whole leftmost label, as in *.example.org");
    }
    let labels: Vec<&str> = rest.split('.').collect();
    if wildcard && labels.len() < 2 {
        return Err("a wildcard needs at least two labels after it, as in *.example.org");
    }
    for label in &labels {
        if label.is_empty() {
            return Err("empty label (two dots in a row, or a leading dot)");
        }
        if label.len() > 63 {
            return Err("a label is longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("only letters, digits, '-' and '_' are allowed (use punycode for other scripts)");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label may not start or end with '-'");
        }
    }
    if labels
        .iter()
        .all(|label| label.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("looks like an IP address but is not a valid one");
    }
    Ok(())
}

fn dns_matches(pattern: &str, name: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let name = name.to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        // A wildcard covers exactly one label, never the bare parent.
        Some(suffix) => name
            .split_once('.')
            .is_some_and(|(first, rest)| !first.is_empty() && rest == suffix && !first.contains('*')),
        None => pattern == name,
    }
}

impl fmt::Display for SubjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubjectName::Dns(name) => f.write_str(name),
            SubjectName::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

impl FromStr for SubjectName {
    type Err = InvalidName;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// Parse each name, keep the first of duplicates, and keep the order given.
pub fn parse_all<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Vec<SubjectName>, InvalidName> {
    let mut out: Vec<SubjectName> = Vec::new();
    for name in names {
        let parsed = SubjectName::parse(name)?;
        if !out.contains(&parsed) {
            out.push(parsed);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_names() {
        assert_eq!(
            SubjectName::parse("localhost").unwrap(),
            SubjectName::Dns("localhost".into())
        );
        assert_eq!(
            SubjectName::parse("Flower.Example.org").unwrap(),
            SubjectName::Dns("flower.example.org".into())
        );
        assert_eq!(
            SubjectName::parse("127.0.0.1").unwrap(),
            SubjectName::Ip("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            SubjectName::parse("::1").unwrap(),
            SubjectName::Ip("::1".parse().unwrap())
        );
        assert_eq!(
            SubjectName::parse("[fe80::1]").unwrap(),
            SubjectName::Ip("fe80::1".parse().unwrap())
        );
        assert_eq!(
            SubjectName::parse("*.example.org").unwrap(),
            SubjectName::Dns("*.example.org".into())
        );
        assert_eq!(
            SubjectName::parse("flower_superlink").unwrap(),
            SubjectName::Dns("flower_superlink".into())
        );
    }

    #[test]
    fn refuses_bad_names() {
        for bad in [
            "",
            " x",
            "a..b",
            "-a.org",
            "a-.org",
            "*.org",
            "a.*.org",
            "*",
            "x*.org",
            "256.1.1.1",
            "1.2.3",
            "host:8000",
            "https://x.org",
            "10.0.0.0/8",
            "exa mple.org",
            "ümlaut.de",
            "[host]",
            "a.org.",
        ] {
            assert!(SubjectName::parse(bad).is_err(), "{bad:?} should be refused");
        }
        let long_label = "a".repeat(64);
        assert!(SubjectName::parse(&long_label).is_err());
    }

    #[test]
    fn wildcard_covers_one_label() {
        let wild = SubjectName::parse("*.example.org").unwrap();
        assert!(wild.covers(&SubjectName::parse("a.example.org").unwrap()));
        assert!(!wild.covers(&SubjectName::parse("example.org").unwrap()));
        assert!(!wild.covers(&SubjectName::parse("a.b.example.org").unwrap()));
        let ip = SubjectName::parse("127.0.0.1").unwrap();
        assert!(!ip.covers(&SubjectName::parse("localhost").unwrap()));
    }
}
