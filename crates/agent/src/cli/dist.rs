//! `cronfleet completions SHELL` (generated from the clap definitions, so they never drift from
//! `--help`; `cronfleet man` is in `man.rs`) and `cronfleet docs`. The files under `dist/` are
//! these outputs (a test checks).

use std::process::ExitCode;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::Cli;

/// `cronfleet completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh or fish.
    #[arg(value_name = "SHELL", value_parser = ["bash", "zsh", "fish"])]
    shell: String,
}

/// Prints the completion script.
pub fn completions(args: CompletionsArgs) -> Result<ExitCode, String> {
    let shell = match args.shell.as_str() {
        "bash" => Shell::Bash,
        "zsh" => Shell::Zsh,
        _ => Shell::Fish,
    };
    clap_complete::generate(shell, &mut Cli::command(), "cronfleet", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// `cronfleet docs` (hidden): the generated parts of the documentation.
#[derive(Debug, Args)]
pub struct DocsArgs {
    /// task-fields, notifier-fields or api.
    #[arg(value_parser = ["task-fields", "notifier-fields", "api"])]
    what: String,
}

/// Prints a generated part of the documentation (Markdown).
pub fn docs(args: DocsArgs) -> Result<ExitCode, String> {
    use crate::config::reference;
    let text = match args.what.as_str() {
        "task-fields" => reference::table(reference::TASK_FIELDS),
        "notifier-fields" => reference::table(reference::NOTIFIER_FIELDS),
        _ => api_reference()?,
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// The API reference, from the OpenAPI document the agent serves.
fn api_reference() -> Result<String, String> {
    let doc: serde_json::Value =
        serde_json::from_str(crate::api::OPENAPI).map_err(|e| e.to_string())?;
    let mut out = String::from(
        "# API reference\n\nGenerated from the OpenAPI document the agent serves at \
         `/api/v1/openapi.json` (`cronfleet docs api`); [api.md](api.md) explains the API.\n",
    );
    for (path, ops) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in ops.as_object().into_iter().flatten() {
            let token = if op["responses"].get("403").is_some() { "admin" } else { "read" };
            out.push_str(&format!(
                "\n## `{} {path}`\n\n{}.\n\nToken: {token}.\n",
                method.to_uppercase(),
                op["summary"].as_str().unwrap_or("").trim_end_matches('.')
            ));
            let params: Vec<&serde_json::Value> =
                op["parameters"].as_array().into_iter().flatten().collect();
            if !params.is_empty() {
                out.push_str("\n| parameter | in | meaning |\n|---|---|---|\n");
                for p in params {
                    out.push_str(&format!(
                        "| `{}` | {} | {} |\n",
                        p["name"].as_str().unwrap_or(""),
                        p["in"].as_str().unwrap_or(""),
                        p["description"].as_str().unwrap_or("")
                    ));
                }
            }
            if let Some(body) = op.get("requestBody") {
                let kinds: Vec<String> = body["content"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(kind, media)| match media["schema"]["$ref"].as_str() {
                        Some(r) => format!("`{kind}` (`{}`)", r.rsplit('/').next().unwrap_or(r)),
                        None => format!("`{kind}`"),
                    })
                    .collect();
                let optional = if body["required"] == true { "" } else { ", optional" };
                out.push_str(&format!("\nBody: {}{optional}.\n", kinds.join(" or ")));
                if let Some(text) = body["description"].as_str() {
                    out.push_str(&format!("{text}\n"));
                }
            }
            let mut codes: Vec<String> = op["responses"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(code, r)| {
                    // A shared response: its description is in the components.
                    let r = match r["$ref"].as_str().and_then(|p| p.rsplit('/').next()) {
                        Some(name) => &doc["components"]["responses"][name],
                        None => r,
                    };
                    // The schema of a JSON answer, by name (errors: always an ErrorBody).
                    let schema = r["content"]["application/json"]["schema"]["$ref"]
                        .as_str()
                        .filter(|_| code.starts_with('2'))
                        .and_then(|p| p.rsplit('/').next())
                        .map_or_else(String::new, |name| format!(" (`{name}`)"));
                    format!("`{code}` {}{schema}", r["description"].as_str().unwrap_or(""))
                })
                .collect();
            codes.sort();
            out.push_str(&format!("\nResponses: {}.\n", codes.join("; ")));
        }
    }
    Ok(out)
}
