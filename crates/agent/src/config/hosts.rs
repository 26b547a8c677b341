//! Host patterns of a task's `hosts`: an IP address, a CIDR block or a hostname glob.

use std::{fmt, net::IpAddr};

/// Which machines a task runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPattern {
    /// One address: `10.1.2.3`, `fe80::1`.
    Ip(IpAddr),
    /// A block: `10.0.0.0/24`.
    Cidr(IpAddr, u8),
    /// A hostname glob with `*` and `?`, matched without regard to case: `web-*`.
    Glob(String),
}

/// Why a `hosts` pattern is not one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// A CIDR block whose address is not one (the address, the pattern).
    #[error("{0:?} in {1:?} is not an IP address")]
    NotAnAddress(String, String),
    /// A prefix length out of range (the pattern, the longest for its family).
    #[error("the prefix length in {0:?} must be 0-{1}")]
    Prefix(String, u8),
    /// Neither an address, a block nor a glob.
    #[error(
        "{0:?} is not an IP address, a CIDR block (10.0.0.0/24) or a hostname glob \
         (letters, digits, - . _ and the wildcards * ?)"
    )]
    NotAPattern(String),
}

impl HostPattern {
    /// Parses one pattern.
    ///
    /// # Errors
    /// A message saying what is wrong.
    pub fn parse(text: &str) -> Result<HostPattern, PatternError> {
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(HostPattern::Ip(ip));
        }
        if let Some((addr, bits)) = text.split_once('/') {
            let ip: IpAddr =
                addr.parse().map_err(|_| PatternError::NotAnAddress(addr.into(), text.into()))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits: u8 = bits
                .parse()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| PatternError::Prefix(text.into(), max))?;
            return Ok(HostPattern::Cidr(ip, bits));
        }
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '*' | '?');
        if text.is_empty() || !text.chars().all(valid) {
            return Err(PatternError::NotAPattern(text.into()));
        }
        Ok(HostPattern::Glob(text.to_ascii_lowercase()))
    }

    /// Whether a host with this name and these addresses matches.
    pub fn matches(&self, hostname: &str, addresses: &[IpAddr]) -> bool {
        match self {
            HostPattern::Ip(ip) => addresses.contains(ip),
            HostPattern::Cidr(net, bits) => addresses.iter().any(|a| in_block(*a, *net, *bits)),
            HostPattern::Glob(glob) => {
                glob_match(glob.as_bytes(), hostname.to_ascii_lowercase().as_bytes())
            }
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Ip(ip) => write!(f, "{ip}"),
            HostPattern::Cidr(ip, bits) => write!(f, "{ip}/{bits}"),
            HostPattern::Glob(g) => f.write_str(g),
        }
    }
}

fn in_block(addr: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// `*` matches any run of characters, `?` any one character.
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn ip_cidr_and_glob() {
        let host = ("web-03.prod", ips(&["10.0.0.17", "fe80::1"]));
        let m = |p: &str| HostPattern::parse(p).unwrap().matches(host.0, &host.1);
        assert!(m("10.0.0.17"));
        assert!(!m("10.0.0.18"));
        assert!(m("10.0.0.0/24"));
        assert!(!m("10.0.1.0/24"));
        assert!(m("0.0.0.0/0"));
        assert!(m("fe80::/10"));
        assert!(m("web-*"));
        assert!(m("WEB-0?.prod"));
        assert!(m("*"));
        assert!(!m("db-*"));
        assert!(!m("web-0?"));
    }

    #[test]
    fn bad_patterns_say_why() {
        assert!(HostPattern::parse("10.0.0.0/33").unwrap_err().to_string().contains("0-32"));
        assert!(HostPattern::parse("10.0.0/24")
            .unwrap_err()
            .to_string()
            .contains("not an IP address"));
        assert!(HostPattern::parse("web 1").unwrap_err().to_string().contains("hostname glob"));
        assert!(HostPattern::parse("").is_err());
    }
}
