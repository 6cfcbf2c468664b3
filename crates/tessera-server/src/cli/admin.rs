//! Admin commands: HTTP calls to a running service.
//!
//! Ids and roles are checked here before anything is sent, so a typo fails
//! at once with a usage error and nothing user-typed is ever spliced into a
//! URL unchecked.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tessera::{OrgId, RoleName, SessionId, UserId};

use super::{
    ClientArgs, Command, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE, MembersCommand,
    SessionsCommand,
};

/// One call: what to send and how to show the answer.
struct Call {
    method: Method,
    path: String,
    body: Option<Value>,
    /// What `--json` prints for a 204 (which has no body).
    no_content: Value,
    render: fn(&Value) -> String,
}

fn usage(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_USAGE)
}

fn plan(command: Command) -> Result<(ClientArgs, Call), String> {
    Ok(match command {
        Command::Stats(client) => (
            client,
            Call {
                method: Method::GET,
                path: "/v1/stats".to_owned(),
                body: None,
                no_content: Value::Null,
                render: render_stats,
            },
        ),
        Command::Cleanup(client) => (
            client,
            Call {
                method: Method::POST,
                path: "/v1/cleanup".to_owned(),
                body: None,
                no_content: Value::Null,
                render: |v| format!("removed {} expired sessions", v["removed"]),
            },
        ),
        Command::Sessions(SessionsCommand::List { user, client }) => {
            let user = UserId::parse(&user).map_err(msg)?;
            (
                client,
                Call {
                    method: Method::GET,
                    path: format!("/v1/users/{user}/sessions"),
                    body: None,
                    no_content: Value::Null,
                    render: render_sessions,
                },
            )
        }
        Command::Sessions(SessionsCommand::Revoke { session_id, client }) => {
            let id = SessionId::parse(&session_id).map_err(msg)?;
            (
                client,
                Call {
                    method: Method::DELETE,
                    path: format!("/v1/sessions/{id}"),
                    body: None,
                    no_content: json!({"session_id": id.to_string(), "revoked": true}),
                    render: |v| format!("revoked session {}", text(&v["session_id"])),
                },
            )
        }
        Command::Sessions(SessionsCommand::RevokeUser { user_id, client }) => {
            let user = UserId::parse(&user_id).map_err(msg)?;
            (
                client,
                Call {
                    method: Method::DELETE,
                    path: format!("/v1/users/{user}/sessions"),
                    body: None,
                    no_content: Value::Null,
                    render: |v| format!("revoked {} sessions", v["revoked"]),
                },
            )
        }
        Command::Members(MembersCommand::Set {
            org_id,
            user_id,
            role,
            client,
        }) => {
            let (_, _, path) = membership_path(&org_id, &user_id)?;
            let role = RoleName::parse(&role).map_err(msg)?;
            (
                client,
                Call {
                    method: Method::PUT,
                    path,
                    body: Some(json!({"role": role.as_str()})),
                    no_content: Value::Null,
                    render: render_membership,
                },
            )
        }
        Command::Members(MembersCommand::Get {
            org_id,
            user_id,
            client,
        }) => {
            let (_, _, path) = membership_path(&org_id, &user_id)?;
            (
                client,
                Call {
                    method: Method::GET,
                    path,
                    body: None,
                    no_content: Value::Null,
                    render: render_membership,
                },
            )
        }
        Command::Members(MembersCommand::Remove {
            org_id,
            user_id,
            client,
        }) => {
            let (org, user, path) = membership_path(&org_id, &user_id)?;
            (
                client,
                Call {
                    method: Method::DELETE,
                    path,
                    body: None,
                    no_content: json!({
                        "org_id": org.to_string(),
                        "user_id": user.to_string(),
                        "removed": true
                    }),
                    render: |v| {
                        format!(
                            "user {} is no longer in org {}; their sessions there are revoked",
                            text(&v["user_id"]),
                            text(&v["org_id"])
                        )
                    },
                },
            )
        }
        Command::Serve(_)
        | Command::Keygen(_)
        | Command::CheckConfig(_)
        | Command::Backup(_)
        | Command::Restore(_) => {
            return Err("not an admin command".to_owned());
        }
    })
}

pub(super) fn run(command: Command) -> ExitCode {
    let (client, call) = match plan(command) {
        Ok(p) => p,
        Err(e) => return usage(&e),
    };
    match super::runtime(EXIT_UNREACHABLE) {
        Ok(runtime) => runtime.block_on(execute(client, call)),
        Err(code) => code,
    }
}

async fn execute(args: ClientArgs, call: Call) -> ExitCode {
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout_secs.max(1)))
        .user_agent(concat!("tessera-cli/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &args.ca_cert {
        let cert = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|pem| reqwest::Certificate::from_pem(&pem).map_err(|e| e.to_string()));
        match cert {
            Ok(c) => builder = builder.tls_certs_only([c]),
            Err(e) => return usage(&format!("--ca-cert {}: {e}", path.display())),
        }
    }
    let client = match builder.build() {
        Ok(c) => c,
        Err(e) => return usage(&format!("cannot set up the HTTP client: {e}")),
    };
    let base = args.url.trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return usage("--url must start with http:// or https://");
    }
    let mut request = client.request(call.method, format!("{base}{}", call.path));
    if let Some(key) = &args.api_key {
        request = request.header("x-api-key", key);
    }
    if let Some(body) = &call.body {
        request = request.json(body);
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot reach the service at {base}: {e}");
            return ExitCode::from(EXIT_UNREACHABLE);
        }
    };
    let status = response.status();
    let bytes = match response.bytes().await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: the service's answer was cut off: {e}");
            return ExitCode::from(EXIT_UNREACHABLE);
        }
    };
    let value: Value = if status == StatusCode::NO_CONTENT || bytes.is_empty() {
        call.no_content.clone()
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    if status.is_success() {
        if args.json {
            println!("{}", pretty(&value));
        } else {
            println!("{}", (call.render)(&value));
        }
        return ExitCode::SUCCESS;
    }
    if args.json {
        println!("{}", pretty(&value));
    } else {
        let e = &value["error"];
        eprintln!(
            "error: {} ({}, HTTP {}, request id {})",
            e["message"]
                .as_str()
                .unwrap_or("the service refused the request"),
            e["type"].as_str().unwrap_or("unknown error"),
            status.as_u16(),
            e["request_id"].as_str().unwrap_or("-"),
        );
    }
    ExitCode::from(EXIT_REFUSED)
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// A JSON value as plain text: strings without quotes, `null` as `-`.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn render_stats(v: &Value) -> String {
    let mut out = String::new();
    for key in [
        "active_sessions",
        "sessions_created",
        "sessions_refreshed",
        "sessions_destroyed",
        "sessions_expired",
        "refresh_reuse_detected",
        "last_cleanup",
        "last_cleanup_removed",
    ] {
        let label = key.replace('_', " ");
        let value = match (key, &v[key]) {
            ("last_cleanup", Value::Null) => "never".to_owned(),
            (_, x) => text(x),
        };
        let _ = writeln!(out, "{label:<24} {value}");
    }
    if let Some(orgs) = v["active_by_org"].as_object().filter(|o| !o.is_empty()) {
        let _ = writeln!(out, "active sessions by org:");
        for (org, n) in orgs {
            let _ = writeln!(out, "  {org}  {n}");
        }
    }
    out.trim_end().to_owned()
}

fn render_sessions(v: &Value) -> String {
    let sessions = v["sessions"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if sessions.is_empty() {
        return "no live sessions".to_owned();
    }
    let columns = [
        ("SESSION", "session_id"),
        ("ORG", "org_id"),
        ("DEVICE", "device_id"),
        ("IP", "ip_address"),
        ("CREATED", "created_at"),
        ("LAST ACTIVITY", "last_activity"),
        ("EXPIRES", "expires_at"),
    ];
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|s| columns.iter().map(|(_, k)| text(&s[*k])).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (h, _))| {
            rows.iter()
                .map(|r| r[i].len())
                .max()
                .unwrap_or(0)
                .max(h.len())
        })
        .collect();
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", parts.join("  ").trim_end());
    };
    line(columns.iter().map(|(h, _)| *h).collect(), &mut out);
    for r in &rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    out.trim_end().to_owned()
}

/// One membership, as `members set` and `members get` print it.
/// A refused id or role, as the CLI says it.
fn msg(e: tessera::SessionError) -> String {
    e.message().to_owned()
}

/// The ids of a membership command, checked, and the API path they name.
fn membership_path(org_id: &str, user_id: &str) -> Result<(OrgId, UserId, String), String> {
    let org = OrgId::parse(org_id).map_err(msg)?;
    let user = UserId::parse(user_id).map_err(msg)?;
    Ok((org, user, format!("/v1/orgs/{org}/members/{user}")))
}

fn render_membership(v: &Value) -> String {
    format!(
        "user {} is {} in org {}",
        text(&v["user_id"]),
        text(&v["role"]),
        text(&v["org_id"])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_tables_align_and_show_missing_fields_as_dashes() {
        let v = json!({"sessions": [{
            "session_id": "s1", "org_id": "o1", "device_id": null, "ip_address": "203.0.113.7",
            "user_agent": null, "created_at": "2027-01-15T08:00:00Z",
            "last_activity": "2027-01-15T08:00:00Z", "expires_at": "2027-01-22T08:00:00Z"
        }]});
        let table = render_sessions(&v);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("SESSION"));
        assert!(lines[1].contains(" -  "), "{table}");
        assert_eq!(
            render_sessions(&json!({"sessions": []})),
            "no live sessions"
        );
    }

    #[test]
    fn stats_say_never_before_the_first_cleanup() {
        let v = json!({"active_sessions": 2, "last_cleanup": null, "active_by_org": {}});
        let out = render_stats(&v);
        assert!(out.contains("last cleanup             never"), "{out}");
        assert!(out.contains("active sessions          2"), "{out}");
    }
}
