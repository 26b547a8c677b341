//! `[[notifier]]` sections: where alerts go.
//!
//! ```toml
//! [[notifier]]
//! name = "ops"
//! kind = "slack"                 # webhook (generic JSON), slack, dingtalk
//! url = "${OPS_SLACK_WEBHOOK}"   # ${NAME} is read from the agent's environment
//! secret = "${DINGTALK_SECRET}"  # optional: signs webhook and dingtalk messages
//! max_per_minute = 20            # rate limit; more are dropped and counted
//! ```

use toml::de::{DeTable, DeValue};

use super::error::Reporter;

/// The format of a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifierKind {
    /// A generic JSON webhook (signed with HMAC-SHA256 when a secret is given).
    Webhook,
    /// A Slack incoming webhook.
    Slack,
    /// A DingTalk robot (signed the DingTalk way when a secret is given).
    DingTalk,
}

impl NotifierKind {
    /// The name used in the task file.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifierKind::Webhook => "webhook",
            NotifierKind::Slack => "slack",
            NotifierKind::DingTalk => "dingtalk",
        }
    }
}

/// One alert channel, with its `${NAME}`s resolved.
#[derive(Clone, PartialEq, Eq)]
pub struct Notifier {
    /// Its name, for tasks' `notify`.
    pub name: String,
    /// Its format.
    pub kind: NotifierKind,
    /// Where to POST (may hold a secret: never logged).
    pub url: String,
    /// Signing secret.
    pub secret: Option<String>,
    /// At most this many messages a minute.
    pub max_per_minute: u32,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // URLs of Slack and DingTalk hooks are credentials themselves.
        f.debug_struct("Notifier")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// The fields of a notifier.
pub(super) const FIELDS: &[&str] = &["name", "kind", "url", "secret", "max_per_minute"];

/// Why a `${NAME}` could not be replaced.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// `${` with no `}`.
    #[error("an unclosed ${{")]
    Unclosed,
    /// Not a name an environment variable can have.
    #[error("${{{0}}}: not an environment variable name")]
    BadName(String),
    /// Not set where the agent runs.
    #[error("environment variable {0} is not set on this machine")]
    Unset(String),
}

/// Replaces each `${NAME}` with the environment variable's value.
fn resolve(text: &str) -> Result<String, EnvError> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or(EnvError::Unclosed)?;
        let name = &after[..end];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(EnvError::BadName(name.to_owned()));
        }
        let value = std::env::var(name).map_err(|_| EnvError::Unset(name.to_owned()))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Reads one `[[notifier]]` table.
pub(super) fn read(rep: &mut Reporter<'_>, table: &DeTable<'_>, header: usize) -> Option<Notifier> {
    let before = rep.errors.len();
    let string = |rep: &mut Reporter<'_>, field: &str| -> Option<(String, usize)> {
        let v = table.get(field)?;
        match v.get_ref() {
            DeValue::String(s) => Some((s.to_string(), v.span().start)),
            _ => {
                rep.error(v.span().start, None, Some(field), "expected a string");
                None
            }
        }
    };
    for key in table.keys() {
        if !FIELDS.contains(&key.get_ref().as_ref()) {
            let message = format!("unknown notifier field; a notifier has {}", FIELDS.join(", "));
            rep.error(key.span().start, None, Some(key.get_ref()), message);
        }
    }
    let name = match string(rep, "name") {
        Some((name, at)) => {
            let ok = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b));
            if !ok {
                rep.error(
                    at,
                    None,
                    Some("name"),
                    format!("{name:?}: use 1-64 of a-z, 0-9, _ and -"),
                );
            }
            Some(name)
        }
        None => {
            rep.error(header, None, Some("name"), "a notifier needs a name");
            None
        }
    };
    let kind = match string(rep, "kind") {
        Some((k, at)) => match k.as_str() {
            "webhook" => Some(NotifierKind::Webhook),
            "slack" => Some(NotifierKind::Slack),
            "dingtalk" => Some(NotifierKind::DingTalk),
            other => {
                let message = format!("expected one of webhook, slack, dingtalk, not {other:?}");
                rep.error(at, None, Some("kind"), message);
                None
            }
        },
        None => {
            rep.error(
                header,
                None,
                Some("kind"),
                "a notifier needs a kind: webhook, slack or dingtalk",
            );
            None
        }
    };
    let url = match string(rep, "url") {
        Some((raw, at)) => match resolve(&raw) {
            Ok(url) if url.starts_with("https://") || url.starts_with("http://") => Some(url),
            Ok(_) => {
                rep.error(at, None, Some("url"), "expected an http:// or https:// URL");
                None
            }
            Err(why) => {
                rep.error(at, None, Some("url"), why);
                None
            }
        },
        None => {
            rep.error(header, None, Some("url"), "a notifier needs a url");
            None
        }
    };
    let secret = string(rep, "secret").and_then(|(raw, at)| match resolve(&raw) {
        Ok(s) => Some(s),
        Err(why) => {
            rep.error(at, None, Some("secret"), why);
            None
        }
    });
    if secret.is_some() && kind == Some(NotifierKind::Slack) {
        let at = table.get("secret").map_or(header, |v| v.span().start);
        rep.error(
            at,
            None,
            Some("secret"),
            "Slack incoming webhooks are not signed: remove the secret",
        );
    }
    let max_per_minute = match table.get("max_per_minute") {
        None => 20,
        Some(v) => match v.get_ref() {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n @ 1..=10_000) => n as u32,
                _ => {
                    rep.error(
                        v.span().start,
                        None,
                        Some("max_per_minute"),
                        "expected an integer 1-10000",
                    );
                    20
                }
            },
            _ => {
                rep.error(
                    v.span().start,
                    None,
                    Some("max_per_minute"),
                    "expected an integer 1-10000",
                );
                20
            }
        },
    };
    if rep.errors.len() > before {
        return None;
    }
    Some(Notifier { name: name?, kind: kind?, url: url?, secret, max_per_minute })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_references_resolve() {
        // SAFETY: this test alone uses the variable.
        unsafe { std::env::set_var("CRONFLEET_TEST_HOOK", "abc") };
        assert_eq!(resolve("https://x/${CRONFLEET_TEST_HOOK}/y").unwrap(), "https://x/abc/y");
        assert_eq!(resolve("plain").unwrap(), "plain");
        assert!(resolve("${CRONFLEET_TEST_UNSET_VAR}")
            .unwrap_err()
            .to_string()
            .contains("is not set"));
        assert!(resolve("${A-B}").is_err());
        assert!(resolve("${OPEN").is_err());
    }
}
