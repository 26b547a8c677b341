//! The task file's reference: every field with its type, default and meaning. The tables in
//! `docs/task-file.md` are generated from here (`cronfleet docs task-fields`, by
//! `scripts/gen-dist`), and a test fails when a field is accepted but not documented here.

/// One documented field.
#[derive(Clone, Copy, Debug)]
pub struct FieldDoc {
    /// Its key.
    pub name: &'static str,
    /// What it holds.
    pub kind: &'static str,
    /// Its default.
    pub default: &'static str,
    /// What it does (Markdown).
    pub meaning: &'static str,
}

/// The fields of a `[[task]]` (and of `[defaults]`).
pub const TASK_FIELDS: &[FieldDoc] = &[
    FieldDoc {
        name: "name",
        kind: r#"string"#,
        default: r#"required"#,
        meaning: r#"Unique; 1-64 of `a-z 0-9 _ -`. A run's identity is (name, slot)."#,
    },
    FieldDoc {
        name: "schedule",
        kind: r#"string"#,
        default: r#"required for cron tasks"#,
        meaning: r#"Any expression of [semantics.md](semantics.md): 5 or 6 fields, descriptors, `@every`, `CRON_TZ=` prefix."#,
    },
    FieldDoc {
        name: "anchor",
        kind: r#"date-time with offset (string or TOML date-time)"#,
        default: r#"none"#,
        meaning: r#"For `@every`: fire at anchor + k × interval, counted from it whenever the agent started. Only with `@every`."#,
    },
    FieldDoc {
        name: "timezone",
        kind: r#"IANA name"#,
        default: r#"the agent's zone"#,
        meaning: r#"Zone of the schedule when it has no `CRON_TZ=` prefix."#,
    },
    FieldDoc {
        name: "command",
        kind: r#"string"#,
        default: r#"—"#,
        meaning: r#"Run by `/bin/sh -c`. Exactly one of `command` and `argv`."#,
    },
    FieldDoc {
        name: "argv",
        kind: r#"array of strings"#,
        default: r#"—"#,
        meaning: r#"Program and arguments, run without a shell."#,
    },
    FieldDoc {
        name: "http",
        kind: r#"table"#,
        default: r#"—"#,
        meaning: r#"Call a URL instead of running a process: `{ url = "https://svc/rules/42/check", method = "POST", headers = { Authorization = "Bearer ..." }, body = "{\"slot\": \"{{scheduled_at}}\"}", expect_status = [200, 204] }`. `{{task}}`, `{{run_id}}`, `{{scheduled_at}}`, `{{attempt}}` and `{{node}}` in the URL, header values and body are filled in. `method` defaults to POST with a body, else GET; success is an `expect_status` code (default: any 2xx). The run's output is the status line and the response body; its exit code is 0 on success, else the HTTP status. `timeout`, `retries`, `concurrency` apply; `user` and `workdir` do not. Exactly one of `command`, `argv` and `http`."#,
    },
    FieldDoc {
        name: "labels",
        kind: r#"table of strings"#,
        default: r#"none"#,
        meaning: r#"Key/value labels (`{ rule = "42", team = "ads" }`): for a service's own ids; the API filters by them."#,
    },
    FieldDoc {
        name: "hosts",
        kind: r#"array of strings"#,
        default: r#"every host"#,
        meaning: r#"IP (`10.1.2.3`), CIDR (`10.0.0.0/24`) or hostname glob (`web-*`, `db-0?`; case-insensitive). A host matches if any pattern matches its hostname or one of its addresses."#,
    },
    FieldDoc {
        name: "tags",
        kind: r#"array of strings"#,
        default: r#"none"#,
        meaning: r#"The agent must carry all of them (`--tag`). Letters, digits, `- _ .`."#,
    },
    FieldDoc {
        name: "kind",
        kind: r#"`cron` or `daemon`"#,
        default: r#"`cron`"#,
        meaning: r#"A daemon is kept running (no `schedule`), restarted with backoff."#,
    },
    FieldDoc {
        name: "concurrency",
        kind: r#"`allow`, `forbid`, `queue`, `replace`"#,
        default: r#"`forbid`"#,
        meaning: r#"What a slot does while a run of the task is still going: start another, skip the slot, wait, or kill the running one."#,
    },
    FieldDoc {
        name: "max_running",
        kind: r#"integer 1-1000"#,
        default: r#"1"#,
        meaning: r#"With `allow`/`queue`: at most this many runs at once. For a `run_on` task in a shared store with `allow` the limit holds across the fleet (a lease per run, renewed while it runs, freed 30 s after its holder dies; with `forbid`, one run in the whole fleet); a slot that finds it reached is skipped, and recorded once, by the node that claimed it. With `queue` and `replace` the policy acts on each node's own runs, for the slots that node claimed (runs on different nodes may overlap)."#,
    },
    FieldDoc {
        name: "timeout",
        kind: r#"duration"#,
        default: r#"none"#,
        meaning: r#"Then SIGTERM to the run's process group, SIGKILL after a grace. Not for daemons (an error on a daemon; `[defaults] timeout` skips them)."#,
    },
    FieldDoc {
        name: "retries",
        kind: r#"integer 0-100"#,
        default: r#"0"#,
        meaning: r#"Retries of a run that ended as `retry_on` says (by default a non-zero exit, a signal, a run that could not start, or a timeout); a run killed by hand, by `replace` or by a stop is never retried."#,
    },
    FieldDoc {
        name: "retry_on",
        kind: r#"array of `failed`, `timed_out`"#,
        default: r#"both"#,
        meaning: r#"Which ends of a run `retries` retry: `failed` (a non-zero exit, a signal, a run that could not start), `timed_out` (stopped by its `timeout`). `["failed"]`: a run that hangs until its timeout is not started again. With `retry_elsewhere`, the same ends are handed to another node."#,
    },
    FieldDoc {
        name: "retry_backoff",
        kind: r#"duration"#,
        default: r#"`10s`"#,
        meaning: r#"Wait before the first retry; doubles after each."#,
    },
    FieldDoc {
        name: "catch_up",
        kind: r#"`skip`, `once`, `all`"#,
        default: r#"`skip`"#,
        meaning: r#"After the agent was down (counted from the task's latest recorded slot): record the missed slots, run the latest one now, or run each now, oldest first (at most 100). `all` goes through `concurrency`: with `forbid` only the first runs; use `queue` to run them one after another."#,
    },
    FieldDoc {
        name: "env",
        kind: r#"table of strings"#,
        default: r#"none"#,
        meaning: r#"Extra environment (`{ LANG = "C" }`); names `[A-Za-z_][A-Za-z0-9_]*`."#,
    },
    FieldDoc {
        name: "workdir",
        kind: r#"absolute path"#,
        default: r#"the agent's"#,
        meaning: r#"Working directory."#,
    },
    FieldDoc {
        name: "user",
        kind: r#"user name"#,
        default: r#"the agent's user"#,
        meaning: r#"Run as this user (when the agent runs as root). Must exist on the machine that validates."#,
    },
    FieldDoc {
        name: "output_limit",
        kind: r#"size"#,
        default: r#"`256KiB`"#,
        meaning: r#"Output kept per run (`512B`, `64KiB`, `1MiB`, `1GB`; at most 1 GiB); the rest is dropped with a marker."#,
    },
    FieldDoc {
        name: "enabled",
        kind: r#"boolean"#,
        default: r#"`true`"#,
        meaning: r#"A disabled task is validated but not scheduled."#,
    },
    FieldDoc {
        name: "secret_env",
        kind: r#"array of `env` keys"#,
        default: r#"none"#,
        meaning: r#"Values never shown to `read` API tokens or in the dashboard of a read-only login (shown as `(secret)`), and masked as `***` in the task's output (see [Secrets in output](#secrets-in-output)). Each must be a key of the task's `env`."#,
    },
    FieldDoc {
        name: "notify",
        kind: r#"array of notifier names"#,
        default: r#"none"#,
        meaning: r#"Alert channels (`[[notifier]]` names of this file). No `notify`, no alerts."#,
    },
    FieldDoc {
        name: "alert_on",
        kind: r#"array of `failed`, `timed_out`, `missed`, `late`, `too_long`"#,
        default: r#"all"#,
        meaning: r#"Which incidents alert. `late` and `too_long` also need their threshold below."#,
    },
    FieldDoc {
        name: "alert_after",
        kind: r#"integer 1-1000"#,
        default: r#"1"#,
        meaning: r#"Failures (or timeouts) in a row before the failure alert."#,
    },
    FieldDoc {
        name: "late_after",
        kind: r#"duration"#,
        default: r#"none"#,
        meaning: r#"Alert when a run starts more than this after its slot."#,
    },
    FieldDoc {
        name: "too_long",
        kind: r#"duration"#,
        default: r#"none"#,
        meaning: r#"Alert when a run is still running after this (resolved when it ends)."#,
    },
    FieldDoc {
        name: "run_on",
        kind: r#"`all`, `one` or an integer 1-1000"#,
        default: r#"`all`"#,
        meaning: r#"With a shared store (`--store postgres://...`): how many of the matching live nodes run each slot. `one`: exactly one (claimed in the database, so never twice, whatever the clocks); the preferred node is chosen by rendezvous hashing over the live matching nodes, and another takes the slot only if it has not claimed it within a short grace. With a node's own SQLite store the node runs every slot."#,
    },
    FieldDoc {
        name: "retry_elsewhere",
        kind: r#"boolean"#,
        default: r#"false"#,
        meaning: r#"With `run_on`: when a slot's run fails (after its `retries`) or is lost with its node, the slot runs once more on another matching node (picked up within a second or two; attempt numbers go on). A lost run may have finished after all on a node cut off from the database, so a retried slot may have run twice."#,
    },
];

/// The fields of a `[[notifier]]`.
pub const NOTIFIER_FIELDS: &[FieldDoc] = &[
    FieldDoc {
        name: "name",
        kind: r#"string"#,
        default: r#"required"#,
        meaning: r#"1-64 of `a-z 0-9 _ -`, unique among notifiers."#,
    },
    FieldDoc {
        name: "kind",
        kind: r#"`webhook`, `slack`, `dingtalk`"#,
        default: r#"required"#,
        meaning: r#"The message format (below)."#,
    },
    FieldDoc {
        name: "url",
        kind: r#"string"#,
        default: r#"required"#,
        meaning: r#"Where to POST. `${NAME}` is replaced by the agent's environment variable NAME (an unset one is an error), so webhook credentials stay out of git."#,
    },
    FieldDoc {
        name: "secret",
        kind: r#"string"#,
        default: r#"none"#,
        meaning: r#"Signing secret (`${NAME}` too). `webhook`: an `X-Cronfleet-Signature: sha256=HEX` header, the HMAC-SHA256 of the body. `dingtalk`: DingTalk's signature (`timestamp` and `sign` query parameters). Not for `slack`."#,
    },
    FieldDoc {
        name: "max_per_minute",
        kind: r#"integer 1-10000"#,
        default: r#"20"#,
        meaning: r#"Messages sent on this channel per minute; more are dropped, logged and counted."#,
    },
];

/// A Markdown table of fields.
pub fn table(fields: &[FieldDoc]) -> String {
    let mut out = String::from("| field | type | default | meaning |\n|---|---|---|---|\n");
    for f in fields {
        out.push_str(&format!("| `{}` | {} | {} | {} |\n", f.name, f.kind, f.default, f.meaning));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(fields: &[FieldDoc]) -> Vec<&str> {
        let mut n: Vec<&str> = fields.iter().map(|f| f.name).collect();
        n.sort_unstable();
        n
    }

    #[test]
    fn every_accepted_field_is_documented() {
        let mut accepted = super::super::FIELDS.to_vec();
        accepted.sort_unstable();
        assert_eq!(names(TASK_FIELDS), accepted, "document the task field in config/reference.rs");
        let mut accepted = super::super::notify::FIELDS.to_vec();
        accepted.sort_unstable();
        assert_eq!(
            names(NOTIFIER_FIELDS),
            accepted,
            "document the notifier field in config/reference.rs"
        );
        for f in TASK_FIELDS.iter().chain(NOTIFIER_FIELDS) {
            assert!(
                !f.kind.is_empty() && !f.default.is_empty() && f.meaning.len() > 10,
                "{}",
                f.name
            );
        }
    }
}
