//! Who this machine is, for a task's `hosts` and `tags`.

use std::net::IpAddr;

use crate::config::Task;

/// The identity tasks are matched against.
#[derive(Clone, Debug)]
pub struct Host {
    /// `--node`, or the hostname.
    pub name: String,
    /// Every address of the machine's interfaces, loopback excluded.
    pub addresses: Vec<IpAddr>,
    /// `--tag`s.
    pub tags: Vec<String>,
}

impl Host {
    /// This machine: the hostname (or `node`), its interface addresses and the given tags.
    pub fn detect(node: Option<String>, tags: Vec<String>) -> Host {
        let name = node.unwrap_or_else(|| {
            nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "localhost".into())
        });
        let mut addresses: Vec<IpAddr> = nix::ifaddrs::getifaddrs()
            .map(|addrs| {
                addrs
                    .filter_map(|a| a.address)
                    .filter_map(|a| {
                        a.as_sockaddr_in()
                            .map(|v4| IpAddr::V4(v4.ip()))
                            .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
                    })
                    .filter(|ip| !ip.is_loopback())
                    .collect()
            })
            .unwrap_or_default();
        addresses.sort();
        addresses.dedup();
        Host { name, addresses, tags }
    }

    /// Whether a task is meant for this host: one of its `hosts` patterns matches (or it has
    /// none) and the host carries all its `tags`.
    pub fn runs(&self, task: &Task) -> bool {
        let host_ok = task.hosts.is_empty()
            || task.hosts.iter().any(|p| p.matches(&self.name, &self.addresses));
        host_ok && task.tags.iter().all(|t| self.tags.contains(t))
    }
}
