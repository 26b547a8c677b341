//! Talking to an agent's API: a local one found through its state directory (`api-addr`,
//! `api-token`), or any one given by `--server URL --token-file FILE`.

use std::{io::BufRead, path::PathBuf, time::Duration};

use clap::Args;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

use crate::{
    agent::default_state_dir,
    api::model::{ErrorBody, ErrorDetails, Run, TaskFields, TaskList},
    pidfile,
};

/// Where the agent is.
#[derive(Clone, Debug, Args)]
pub struct Remote {
    /// An agent's API, like https://10.0.0.5:7070 [default: the local agent of --state-dir].
    #[arg(long, value_name = "URL", env = "CRONFLEET_SERVER")]
    pub server: Option<String>,
    /// A file holding the API token [default with --server: $CRONFLEET_TOKEN].
    #[arg(long, value_name = "FILE", env = "CRONFLEET_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// A CA certificate (PEM) to trust for an agent's HTTPS (a self-signed one, say).
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// The local agent's state directory.
    #[arg(long, value_name = "DIR", env = "CRONFLEET_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

/// A connection to an agent's API.
#[derive(Debug)]
pub struct Client {
    base: String,
    token: String,
    http: reqwest::blocking::Client,
}

pub use crate::api::segment;

impl Remote {
    /// The state directory.
    pub fn dir(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(default_state_dir)
    }

    /// The agent's API: `--server`, else the local agent when it runs and serves one.
    ///
    /// # Errors
    /// A token that cannot be read, or a bad CA file.
    pub fn find(&self) -> Result<Option<Client>, String> {
        let dir = self.dir();
        let (base, token) = match &self.server {
            Some(url) => {
                let token = match &self.token_file {
                    Some(f) => std::fs::read_to_string(f)
                        .map_err(|e| format!("--token-file {}: {e}", f.display()))?,
                    None => std::env::var("CRONFLEET_TOKEN").map_err(|_| {
                        "--server needs --token-file FILE (or CRONFLEET_TOKEN)".to_owned()
                    })?,
                };
                (url.trim_end_matches('/').to_owned(), token)
            }
            None => {
                let Ok(addr) = std::fs::read_to_string(dir.join("api-addr")) else {
                    return Ok(None);
                };
                let alive = crate::agent::Identity::read(&dir)
                    .is_some_and(|i| pidfile::alive(i.pid as i32));
                if !alive {
                    return Ok(None);
                }
                let token_file = self.token_file.clone().unwrap_or_else(|| dir.join("api-token"));
                let token = std::fs::read_to_string(&token_file).map_err(|e| {
                    format!("cannot read the agent's token {}: {e}", token_file.display())
                })?;
                (addr.trim().to_owned(), token)
            }
        };
        // No overall timeout: following a run's output lasts as long as the run.
        let mut http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(None::<Duration>);
        if let Some(ca) = &self.ca_cert {
            let pem = std::fs::read(ca).map_err(|e| format!("--ca-cert {}: {e}", ca.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| format!("--ca-cert {}: {e}", ca.display()))?;
            http = http.add_root_certificate(cert);
        }
        let http = http.build().map_err(|e| e.to_string())?;
        Ok(Some(Client { base, token: token.trim().to_owned(), http }))
    }

    /// The agent's API, or an error saying how to reach one.
    ///
    /// # Errors
    /// No agent found, or [`Remote::find`]'s errors.
    pub fn client(&self) -> Result<Client, String> {
        self.find()?.ok_or_else(|| {
            format!(
                "no running agent with an API in {} (give --state-dir, or --server and --token-file)",
                self.dir().display()
            )
        })
    }
}

/// Why a request to the agent failed.
#[derive(Debug)]
pub enum Failure {
    /// The agent answered with an error: its status, and its message as text.
    Refused(reqwest::StatusCode, String),
    /// The agent could not be reached, or its answer was not understood.
    Broken(String),
}

impl Failure {
    /// Whether the agent answered 404 (no such task, run or route).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Failure::Refused(status, _) if *status == reqwest::StatusCode::NOT_FOUND)
    }
}

impl From<Failure> for String {
    fn from(f: Failure) -> String {
        match f {
            Failure::Refused(_, text) | Failure::Broken(text) => text,
        }
    }
}

impl Client {
    /// Sends a request; the answer's body as `T` (an empty body read as `null`, so `()`
    /// takes a 204).
    fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::blocking::RequestBuilder,
    ) -> Result<T, Failure> {
        let response = request.bearer_auth(&self.token).send().map_err(|e| {
            Failure::Broken(format!("cannot reach the agent at {}: {e}", self.base))
        })?;
        let status = response.status();
        let body = response.bytes().unwrap_or_default();
        if !status.is_success() {
            return Err(Failure::Refused(status, error_text(status, &body)));
        }
        let parsed = if body.iter().all(u8::is_ascii_whitespace) {
            T::deserialize(Value::Null).map_err(|e| e.to_string())
        } else {
            serde_json::from_slice(&body).map_err(|e| e.to_string())
        };
        parsed.map_err(|e| {
            Failure::Broken(format!(
                "the agent at {} gave an answer not understood: {e}",
                self.base
            ))
        })
    }

    /// `GET path`.
    ///
    /// # Errors
    /// The agent's error message, or why it could not be reached.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, String> {
        Ok(self.fetch(path)?)
    }

    /// `GET path`, with the agent's refusal kept apart from other failures.
    ///
    /// # Errors
    /// The agent's error (with its status), or why it could not be reached.
    pub fn fetch<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        self.send(self.http.get(format!("{}{path}", self.base)))
    }

    /// The names of the agent's tasks (none when it cannot tell): what a misspelt name is
    /// compared with.
    pub fn task_names(&self) -> Vec<String> {
        self.get::<TaskList>("/api/v1/tasks")
            .map(|l| l.tasks.into_iter().map(|t| t.definition.name).collect())
            .unwrap_or_default()
    }

    /// The result of a request about task `name`, where a 404 means there is no such task:
    /// "no task named `name`", with the nearest of the agent's task names.
    ///
    /// # Errors
    /// That, or the request's own failure.
    pub fn about_task<T>(&self, name: &str, result: Result<T, Failure>) -> Result<T, String> {
        match result {
            Err(f) if f.is_not_found() => Err(super::unknown_task(name, &self.task_names())),
            other => Ok(other?),
        }
    }

    /// `POST path` with a JSON body.
    ///
    /// # Errors
    /// The agent's error (with its status), or why it could not be reached.
    pub fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, Failure> {
        let mut request = self.http.post(format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(body);
        }
        self.send(request)
    }

    /// Any request: a JSON body or a text one, and an `If-Match` revision.
    ///
    /// # Errors
    /// The agent's error (with its status), or why it could not be reached.
    pub fn request<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Body<'_>,
        if_match: Option<i64>,
    ) -> Result<T, Failure> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        match body {
            Body::None => {}
            Body::Fields(fields) => request = request.json(fields),
            Body::Text(text) => {
                request = request
                    .header("content-type", "text/plain; charset=utf-8")
                    .body(text.to_owned());
            }
        }
        if let Some(revision) = if_match {
            request = request.header("if-match", format!("\"{revision}\""));
        }
        self.send(request)
    }

    /// A run's output as raw bytes.
    ///
    /// # Errors
    /// The agent's error, or why it could not be reached.
    pub fn output(&self, id: &str) -> Result<Vec<u8>, String> {
        let url = format!("{}/api/v1/runs/{}/output", self.base, segment(id));
        let response = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .send()
            .map_err(|e| format!("cannot reach the agent at {}: {e}", self.base))?;
        if !response.status().is_success() {
            return Err(error_message(&response.bytes().unwrap_or_default(), "no output"));
        }
        response.bytes().map(|b| b.to_vec()).map_err(|e| e.to_string())
    }

    /// Follows a run's output as it comes, calling `chunk` with each piece; returns the
    /// finished run (none when the agent no longer has its record).
    ///
    /// # Errors
    /// The agent's error, or a broken stream.
    pub fn follow(&self, id: &str, mut chunk: impl FnMut(&str)) -> Result<Option<Run>, String> {
        let url = format!("{}/api/v1/runs/{}/output?follow=true", self.base, segment(id));
        let response = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .map_err(|e| format!("cannot reach the agent at {}: {e}", self.base))?;
        if !response.status().is_success() {
            return Err(error_message(&response.bytes().unwrap_or_default(), "no such run"));
        }
        // Server-sent events: `event:` then `data:` lines (one per line of text), then a
        // blank line.
        let mut event = String::new();
        let mut data: Vec<String> = Vec::new();
        for line in std::io::BufReader::new(response).lines() {
            let line = line.map_err(|e| format!("the stream broke: {e}"))?;
            if let Some(name) = line.strip_prefix("event:") {
                event = name.trim().to_owned();
            } else if let Some(d) = line.strip_prefix("data:") {
                data.push(d.strip_prefix(' ').unwrap_or(d).to_owned());
            } else if line.is_empty() && !data.is_empty() {
                let text = data.join("\n");
                data.clear();
                match event.as_str() {
                    "output" => chunk(&text),
                    // `{}`: the run's record is gone.
                    "end" if text == "{}" => return Ok(None),
                    "end" => {
                        return serde_json::from_str(&text).map(Some).map_err(|e| e.to_string())
                    }
                    _ => {}
                }
            }
        }
        Err("the stream ended before the run did".into())
    }
}

/// The body of a request.
#[derive(Clone, Copy, Debug)]
pub enum Body<'a> {
    /// None.
    None,
    /// Task file fields, as JSON.
    Fields(&'a TaskFields),
    /// A task file.
    Text(&'a str),
}

/// The message of an error's body, or `otherwise`.
fn error_message(body: &[u8], otherwise: &str) -> String {
    serde_json::from_slice::<ErrorBody>(body)
        .map_or_else(|_| otherwise.to_owned(), |b| b.error.message)
}

/// An error answer as text: the agent's message, once, then each of its details on a line of
/// its own (a task file's errors with their places). The status is left out when the agent
/// said what went wrong (a `(HTTP 422)` after a caret line reads like part of the
/// expression); an answer without a message gives it instead.
fn error_text(status: reqwest::StatusCode, body: &[u8]) -> String {
    let Some(error) = serde_json::from_slice::<ErrorBody>(body).ok().map(|b| b.error) else {
        return format!("the agent answered HTTP {status} without saying why");
    };
    let field =
        |f: &Option<String>| f.as_ref().map(|f| format!("field `{f}`: ")).unwrap_or_default();
    match error.details {
        Some(ErrorDetails::File(problems)) => {
            let mut text = error.message;
            for p in problems {
                let place = if p.line > 0 {
                    format!("{}:{}:{}: ", p.file, p.line, p.column)
                } else {
                    String::new()
                };
                let task = p.task.as_ref().map(|t| format!("task {t:?}, ")).unwrap_or_default();
                text.push_str(&format!("\n{place}{task}{}{}", field(&p.field), p.message));
            }
            text
        }
        // The message joins the problems' own messages (without their fields): say each once,
        // with its field, instead.
        Some(ErrorDetails::Fields(problems)) if !problems.is_empty() => {
            let lines: Vec<String> =
                problems.iter().map(|p| format!("{}{}", field(&p.field), p.message)).collect();
            match lines.as_slice() {
                [one] => format!("invalid task: {one}"),
                many => format!("invalid task ({} problems):\n{}", many.len(), many.join("\n")),
            }
        }
        Some(ErrorDetails::Fields(_) | ErrorDetails::Revision { .. }) | None => error.message,
    }
}
