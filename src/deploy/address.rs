//! `HOST[:PORT]`: an address one host dials to reach another (the superlink's public
//! address). The host is sorted into a DNS name or an IP address by the same rules as the
//! names a server certificate covers; an IPv6 address is written in brackets.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::tls::SubjectName;

/// A host to dial and, optionally, its port (the release's Fleet port when absent).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Address {
    pub host: SubjectName,
    pub port: Option<u16>,
}

/// Why an address was refused; the caller adds the flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a HOST[:PORT] address: {reason}")]
pub struct InvalidAddress {
    pub text: String,
    pub reason: String,
}

impl Address {
    /// Parse `HOST`, `HOST:PORT`, `[IPV6]` or `[IPV6]:PORT`.
    pub fn parse(text: &str) -> Result<Self, InvalidAddress> {
        let invalid = |reason: &str| InvalidAddress {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        if text.is_empty() {
            return Err(invalid("empty"));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("contains white space or a control character"));
        }
        if text.contains("://") {
            return Err(invalid("an address, not a URL (drop the scheme)"));
        }
        let (host_text, port_text) = if let Some(rest) = text.strip_prefix('[') {
            let Some((inside, after)) = rest.split_once(']') else {
                return Err(invalid("an opening '[' without a closing ']'"));
            };
            if inside.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(invalid("brackets hold only an IPv6 address"));
            }
            match after {
                "" => (inside, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (inside, Some(port)),
                    None => return Err(invalid("only :PORT may follow the closing ']'")),
                },
            }
        } else {
            match text.matches(':').count() {
                0 => (text, None),
                1 => {
                    let (host, port) = text.split_once(':').expect("one colon");
                    (host, Some(port))
                }
                _ if text.parse::<std::net::Ipv6Addr>().is_ok() => {
                    return Err(invalid(
                        "write an IPv6 address in brackets, as in [::1] or [::1]:8000",
                    ));
                }
                _ => return Err(invalid("more than one ':'")),
            }
        };
        let port = port_text.map(parse_port).transpose().map_err(invalid)?;
        let host = SubjectName::parse(host_text).map_err(|err| invalid(err.reason))?;
        match &host {
            SubjectName::Dns(name) if name.starts_with("*.") => {
                return Err(invalid("a wildcard name cannot be dialled"));
            }
            SubjectName::Ip(ip) if ip.is_unspecified() => {
                return Err(invalid("the unspecified address cannot be dialled"));
            }
            _ => {}
        }
        Ok(Self { host, port })
    }

    /// A service name on the deployment's own network (`superlink`) and its port.
    pub fn service(name: &str, port: u16) -> Self {
        Self {
            host: SubjectName::Dns(name.to_string()),
            port: Some(port),
        }
    }

    /// Every interface of the container, as a listener's address (`0.0.0.0:PORT`): never
    /// parsed from input, which refuses the unspecified address.
    pub fn any(port: u16) -> Self {
        Self::ip(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), port)
    }

    /// An IP address and port.
    pub fn ip(ip: IpAddr, port: u16) -> Self {
        Self {
            host: SubjectName::Ip(ip),
            port: Some(port),
        }
    }

    /// This address with its port filled in: the given one, or `default`.
    #[must_use]
    pub fn with_port(&self, default: u16) -> Self {
        Self {
            host: self.host.clone(),
            port: Some(self.port_or(default)),
        }
    }

    /// The port to dial: the given one, or `default` (the release's Fleet port).
    pub fn port_or(&self, default: u16) -> u16 {
        self.port.unwrap_or(default)
    }

    /// `HOST:PORT` as a dialer takes it (`[IPV6]:PORT` for IPv6).
    pub fn dial(&self, default_port: u16) -> String {
        format!("{}:{}", self.host_text(), self.port_or(default_port))
    }

    /// The host as written in an address (IPv6 in brackets).
    fn host_text(&self) -> String {
        match &self.host {
            SubjectName::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
            other => other.to_string(),
        }
    }
}

fn parse_port(text: &str) -> Result<u16, &'static str> {
    const WHY: &str = "the port must be a number from 1 to 65535";
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(WHY);
    }
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(WHY),
        Ok(port) => Ok(port),
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host_text())?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

impl From<Address> for String {
    fn from(address: Address) -> Self {
        address.to_string()
    }
}

impl TryFrom<String> for Address {
    type Error = InvalidAddress;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Address {
        Address::parse(text).unwrap_or_else(|err| panic!("{text}: {err}"))
    }

    #[test]
    fn names_and_ips_with_and_without_ports() {
        let name = ok("Flower.Example.org");
        assert_eq!(name.host, SubjectName::Dns("flower.example.org".into()));
        assert_eq!(name.port, None);
        assert_eq!(name.dial(8000), "flower.example.org:8000");
        let with_port = ok("flower.example.org:9092");
        assert_eq!(with_port.port, Some(9092));
        assert_eq!(with_port.dial(8000), "flower.example.org:9092");
        let v4 = ok("10.0.0.5:443");
        assert_eq!(v4.host, SubjectName::Ip("10.0.0.5".parse().unwrap()));
        assert_eq!(v4.to_string(), "10.0.0.5:443");
        let v6 = ok("[::1]:9092");
        assert_eq!(v6.host, SubjectName::Ip("::1".parse().unwrap()));
        assert_eq!(v6.dial(8000), "[::1]:9092");
        let bare_v6 = ok("[fe80::1]");
        assert_eq!(bare_v6.port, None);
        assert_eq!(bare_v6.dial(8000), "[fe80::1]:8000");
        assert_eq!(bare_v6.to_string(), "[fe80::1]");
        assert_eq!(ok("superlink_1").dial(1), "superlink_1:1");
        assert_eq!(ok("a:65535").port, Some(65_535));
    }

    #[test]
    fn refuses_what_cannot_be_dialled() {
        for (bad, why) in [
            ("", "empty"),
            ("bad name", "white space"),
            ("host:0", "1 to 65535"),
            ("host:65536", "1 to 65535"),
            ("host:", "1 to 65535"),
            ("host:80a", "1 to 65535"),
            ("host:+80", "1 to 65535"),
            ("::1", "brackets"),
            ("fe80::1:9092", "brackets"),
            ("[::1", "closing"),
            ("[::1]9092", ":PORT"),
            ("[10.0.0.1]:80", "IPv6"),
            ("[host]", "IPv6"),
            ("a:b:c", "more than one"),
            ("https://flower.example.org", "URL"),
            ("*.example.org", "wildcard"),
            ("0.0.0.0", "unspecified"),
            ("[::]:8000", "unspecified"),
            ("999.1.1.1", "IP address"),
            ("a..b", "empty label"),
            ("10.0.0.0/8", "network"),
            ("ümlaut.de", "letters"),
        ] {
            let err = Address::parse(bad).expect_err(bad).to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
            assert!(err.contains(&format!("{bad:?}")), "{bad:?}: {err}");
        }
    }

    #[test]
    fn round_trips_through_json() {
        for text in ["flower.example.org", "10.0.0.5:443", "[::1]:9092", "[fe80::1]"] {
            let address = ok(text);
            let json = serde_json::to_string(&address).unwrap();
            assert_eq!(json, format!("{text:?}"));
            let back: Address = serde_json::from_str(&json).unwrap();
            assert_eq!(back, address);
        }
        assert!(serde_json::from_str::<Address>("\"host:0\"").is_err());
    }
}
