//! `waymark admin users|roles|divisions|tokens|deployments|oauth-clients`: administration straight on the
//! store (no running server needed), through the same operations and checks as the HTTP admin API, acting as
//! the operator (every permission) of one organisation. Results print as JSON.

use crate::cli::{ServeArgs, build_state, open_store};
use crate::settings;
use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::path::PathBuf;
use waymark_server::AppState;
use waymark_server::accounts::{Org, Token, User};
use waymark_server::admin_api::{self as ops, operator};
use waymark_server::auth::Caller;
use waymark_server::error::ApiError;
use waymark_store::RecordKind;

/// Which store and organisation a command works on.
#[derive(Debug, Args, Clone)]
pub struct Target {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Organisation name (as created by `waymark admin bootstrap --org`).
    #[arg(long, default_value = "Default")]
    pub org: String,
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// List the people of the organisation.
    List(Target),
    /// Add a person.
    Add {
        #[command(flatten)]
        target: Target,
        /// Sign-in email (unique).
        #[arg(long)]
        email: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Password for the agent UI (10+ characters); omit for token-only accounts.
        #[arg(long, env = "WAYMARK_USER_PASSWORD")]
        password: Option<String>,
        /// Role name or id (repeatable), e.g. `--role User`.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Division name or id (repeatable); none = every division.
        #[arg(long = "division")]
        divisions: Vec<String>,
    },
    /// Change a person (only the given options change).
    Set {
        #[command(flatten)]
        target: Target,
        /// Email or id of the person.
        user: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, env = "WAYMARK_USER_PASSWORD")]
        password: Option<String>,
        /// Replace the roles (repeatable; names or ids).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Replace the divisions (repeatable; names or ids).
        #[arg(long = "division")]
        divisions: Vec<String>,
        /// `active` or `inactive`.
        #[arg(long)]
        state: Option<String>,
    },
    /// Delete a person; their tokens stop working at once.
    Remove {
        #[command(flatten)]
        target: Target,
        /// Email or id of the person.
        user: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RolesCommand {
    /// List roles with their permissions.
    List(Target),
    /// Add a custom role.
    Add {
        #[command(flatten)]
        target: Target,
        /// Role name.
        name: String,
        /// Permission (repeatable), e.g. `--permission journey:session:view` or `--permission 'journey:*:view'`.
        #[arg(long = "permission")]
        permissions: Vec<String>,
    },
    /// Delete a custom role nobody holds.
    Remove {
        #[command(flatten)]
        target: Target,
        /// Role name or id.
        role: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DivisionsCommand {
    /// List divisions.
    List(Target),
    /// Add a division.
    Add {
        #[command(flatten)]
        target: Target,
        /// Division name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// List a person's tokens (never their secrets).
    List {
        #[command(flatten)]
        target: Target,
        /// Email or id of the person.
        #[arg(long)]
        user: String,
    },
    /// Issue an API token for a person; the secret is printed once.
    Issue {
        #[command(flatten)]
        target: Target,
        /// Email or id of the person.
        #[arg(long)]
        user: String,
        /// What the token is for.
        #[arg(long, default_value = "")]
        description: String,
        /// Lifetime in days (default 90).
        #[arg(long, default_value_t = 90)]
        expires_in_days: i64,
    },
    /// Revoke a token at once.
    Revoke {
        #[command(flatten)]
        target: Target,
        /// Token id (the 16 hex characters after `wm_`).
        id: String,
    },
}

/// Deployment settings shared by `add` and `set`.
#[derive(Debug, Args, Clone, Default)]
pub struct DeploymentOptions {
    /// Allowed domain (repeatable): `shop.example` or `*.shop.example`.
    #[arg(long = "domain")]
    pub domains: Vec<String>,
    /// Accept tracking from every origin.
    #[arg(long)]
    pub allow_all_domains: Option<bool>,
    /// Address or CIDR range whose visitors are not tracked (repeatable).
    #[arg(long = "exclude-ip")]
    pub excluded_ip_ranges: Vec<String>,
    /// Query parameter that carries a site search (repeatable; default q, query, search, s).
    #[arg(long = "search-param")]
    pub search_params: Vec<String>,
    /// Query parameter removed from stored URLs (repeatable).
    #[arg(long = "exclude-param")]
    pub excluded_params: Vec<String>,
    /// Keep `#fragment`s of page URLs.
    #[arg(long)]
    pub keep_url_fragment: Option<bool>,
    /// Store visitors' IP addresses.
    #[arg(long)]
    pub ip_collection: Option<bool>,
    /// Division name or id (repeatable) the deployment's sessions belong to.
    #[arg(long = "division")]
    pub divisions: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum DeploymentsCommand {
    /// List deployments.
    List(Target),
    /// Add a deployment (a website that sends tracking data).
    Add {
        #[command(flatten)]
        target: Target,
        /// Deployment name.
        name: String,
        #[command(flatten)]
        options: DeploymentOptions,
    },
    /// Change a deployment (only the given options change; repeatable options replace the whole list).
    Set {
        #[command(flatten)]
        target: Target,
        /// Deployment id.
        id: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        options: DeploymentOptions,
    },
    /// Delete a deployment; its tracking requests are refused from then on.
    Remove {
        #[command(flatten)]
        target: Target,
        /// Deployment id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum OauthClientsCommand {
    /// List OAuth clients.
    List(Target),
    /// Add an OAuth client (client-credentials grant at POST /oauth/token); the secret is printed once.
    Add {
        #[command(flatten)]
        target: Target,
        /// Client name.
        name: String,
        /// Role name or id (repeatable) whose permissions the client's tokens carry.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Division name or id (repeatable).
        #[arg(long = "division")]
        divisions: Vec<String>,
        /// Access token lifetime in seconds (300–172800).
        #[arg(long, default_value_t = 86_400)]
        token_ttl: i64,
    },
    /// Delete an OAuth client; its tokens stop working at once.
    Remove {
        #[command(flatten)]
        target: Target,
        /// Client id.
        id: String,
    },
}

/// An open store plus the operator of the organisation.
struct Console {
    state: AppState,
    caller: Caller,
}

async fn console(config: Option<&PathBuf>, target: &Target) -> Result<Console> {
    let s = settings::load(config, &target.serve)?;
    let store = open_store(&s).await?;
    let org = store
        .find_record(RecordKind::Org, None, &target.org)
        .await?
        .ok_or_else(|| anyhow!("no organisation named {:?}; create it with `waymark admin bootstrap`", target.org))?
        .decode::<Org>()?;
    let state = build_state(&s, store)?;
    Ok(Console { state, caller: operator(org.id) })
}

fn api(e: ApiError) -> anyhow::Error {
    match &e.field {
        Some(f) => anyhow!("{} ({}: {})", e.message, e.code, f),
        None => anyhow!("{} ({})", e.message, e.code),
    }
}

fn print(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

impl Console {
    async fn user(&self, key: &str) -> Result<User> {
        let store = &self.state.store;
        let rec = match store.find_record(RecordKind::User, None, &key.trim().to_lowercase()).await? {
            Some(r) => Some(r),
            None => store.get_record(RecordKind::User, key).await?,
        };
        let user: User = rec.ok_or_else(|| anyhow!("no user {key:?}"))?.decode()?;
        if user.org != self.caller.org {
            bail!("no user {key:?} in this organisation");
        }
        Ok(user)
    }

    async fn named_ids(&self, kind: RecordKind, what: &str, keys: &[String]) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for k in keys {
            match self.state.store.find_record(kind, Some(self.caller.org), k).await? {
                Some(r) => out.push(r.id),
                None => match self.state.store.get_record(kind, k).await? {
                    Some(r) if r.org == Some(self.caller.org) => out.push(r.id),
                    _ => bail!("no {what} {k:?} in this organisation"),
                },
            }
        }
        Ok(out)
    }

    async fn list(&self, kind: RecordKind) -> Result<Vec<Value>> {
        let recs = self.state.store.list_records(kind, Some(self.caller.org)).await?;
        Ok(recs.into_iter().map(|r| r.body).collect())
    }
}

pub async fn users(config: Option<&PathBuf>, cmd: UsersCommand) -> Result<()> {
    match cmd {
        UsersCommand::List(target) => {
            let c = console(config, &target).await?;
            let users = ops::org_users(&c.state, c.caller.org).await.map_err(api)?;
            let rows: Vec<Value> = users
                .iter()
                .map(|u| {
                    json!({"id": u.id.to_string(), "email": u.email, "name": u.name, "active": u.active,
                    "roleIds": u.role_ids, "divisionIds": u.division_ids})
                })
                .collect();
            print(&json!(rows))
        }
        UsersCommand::Add { target, email, name, password, roles, divisions } => {
            let c = console(config, &target).await?;
            let req = ops::CreateUser {
                email,
                name,
                password,
                role_ids: c.named_ids(RecordKind::Role, "role", &roles).await?,
                division_ids: c.named_ids(RecordKind::Division, "division", &divisions).await?,
            };
            print(&ops::add_user(&c.state, &c.caller, req).await.map_err(api)?)
        }
        UsersCommand::Set { target, user, name, password, roles, divisions, state } => {
            let c = console(config, &target).await?;
            let u = c.user(&user).await?;
            let req = ops::PatchUser {
                name,
                email: None,
                password,
                role_ids: if roles.is_empty() {
                    None
                } else {
                    Some(c.named_ids(RecordKind::Role, "role", &roles).await?)
                },
                division_ids: if divisions.is_empty() {
                    None
                } else {
                    Some(c.named_ids(RecordKind::Division, "division", &divisions).await?)
                },
                state,
            };
            print(&ops::change_user(&c.state, &c.caller, &u.id.to_string(), req).await.map_err(api)?)
        }
        UsersCommand::Remove { target, user } => {
            let c = console(config, &target).await?;
            let u = c.user(&user).await?;
            ops::remove_user(&c.state, &c.caller, &u.id.to_string()).await.map_err(api)?;
            eprintln!("deleted {}", u.email);
            Ok(())
        }
    }
}

pub async fn roles(config: Option<&PathBuf>, cmd: RolesCommand) -> Result<()> {
    match cmd {
        RolesCommand::List(target) => {
            let c = console(config, &target).await?;
            print(&json!(c.list(RecordKind::Role).await?))
        }
        RolesCommand::Add { target, name, permissions } => {
            let c = console(config, &target).await?;
            let req = ops::RoleRequest { name: Some(name), permissions: Some(permissions) };
            print(&ops::add_role(&c.state, &c.caller, req).await.map_err(api)?)
        }
        RolesCommand::Remove { target, role } => {
            let c = console(config, &target).await?;
            let id = c.named_ids(RecordKind::Role, "role", &[role]).await?.remove(0);
            ops::remove_role(&c.state, &c.caller, &id).await.map_err(api)?;
            eprintln!("deleted role {id}");
            Ok(())
        }
    }
}

pub async fn divisions(config: Option<&PathBuf>, cmd: DivisionsCommand) -> Result<()> {
    match cmd {
        DivisionsCommand::List(target) => {
            let c = console(config, &target).await?;
            print(&json!(c.list(RecordKind::Division).await?))
        }
        DivisionsCommand::Add { target, name } => {
            let c = console(config, &target).await?;
            let req = ops::DivisionRequest { name: Some(name), description: None };
            print(&ops::add_division(&c.state, &c.caller, req).await.map_err(api)?)
        }
    }
}

pub async fn tokens(config: Option<&PathBuf>, cmd: TokensCommand) -> Result<()> {
    match cmd {
        TokensCommand::List { target, user } => {
            let c = console(config, &target).await?;
            let u = c.user(&user).await?;
            let mut rows = Vec::new();
            for r in c.state.store.list_records(RecordKind::Token, Some(c.caller.org)).await? {
                let t: Token = r.decode()?;
                if t.user_id == u.id {
                    rows.push(json!({"id": t.id, "kind": t.kind, "description": t.description,
                        "created": t.created, "expires": t.expires, "revoked": t.revoked}));
                }
            }
            print(&json!(rows))
        }
        TokensCommand::Issue { target, user, description, expires_in_days } => {
            let c = console(config, &target).await?;
            let u = c.user(&user).await?;
            let req = ops::CreateToken {
                description,
                expires_in_seconds: Some(expires_in_days.saturating_mul(86_400)),
                user_id: Some(u.id.to_string()),
            };
            let v = ops::add_token(&c.state, &c.caller, req).await.map_err(api)?;
            eprintln!("The token is shown once; keep it secret.");
            print(&v)
        }
        TokensCommand::Revoke { target, id } => {
            let c = console(config, &target).await?;
            ops::remove_token(&c.state, &c.caller, &id).await.map_err(api)?;
            eprintln!("revoked {id}");
            Ok(())
        }
    }
}

async fn deployment_request(c: &Console, name: Option<String>, o: DeploymentOptions) -> Result<ops::DeploymentRequest> {
    let list = |v: Vec<String>| if v.is_empty() { None } else { Some(v) };
    Ok(ops::DeploymentRequest {
        name,
        allow_all_domains: o.allow_all_domains,
        allowed_domains: list(o.domains),
        search_query_params: list(o.search_params),
        excluded_query_params: list(o.excluded_params),
        keep_url_fragment: o.keep_url_fragment,
        ip_collection: o.ip_collection,
        excluded_ip_ranges: list(o.excluded_ip_ranges),
        division_ids: if o.divisions.is_empty() {
            None
        } else {
            Some(c.named_ids(RecordKind::Division, "division", &o.divisions).await?)
        },
    })
}

pub async fn deployments(config: Option<&PathBuf>, cmd: DeploymentsCommand) -> Result<()> {
    match cmd {
        DeploymentsCommand::List(target) => {
            let c = console(config, &target).await?;
            print(&json!(c.list(RecordKind::Deployment).await?))
        }
        DeploymentsCommand::Add { target, name, options } => {
            let c = console(config, &target).await?;
            let req = deployment_request(&c, Some(name), options).await?;
            print(&ops::add_deployment(&c.state, &c.caller, req).await.map_err(api)?)
        }
        DeploymentsCommand::Set { target, id, name, options } => {
            let c = console(config, &target).await?;
            let req = deployment_request(&c, name, options).await?;
            print(&ops::change_deployment(&c.state, &c.caller, &id, req).await.map_err(api)?)
        }
        DeploymentsCommand::Remove { target, id } => {
            let c = console(config, &target).await?;
            ops::remove_deployment(&c.state, &c.caller, &id).await.map_err(api)?;
            eprintln!("deleted deployment {id}");
            Ok(())
        }
    }
}

pub async fn oauth_clients(config: Option<&PathBuf>, cmd: OauthClientsCommand) -> Result<()> {
    match cmd {
        OauthClientsCommand::List(target) => {
            let c = console(config, &target).await?;
            let rows: Vec<Value> = c
                .list(RecordKind::OauthClient)
                .await?
                .into_iter()
                .map(|mut v| {
                    if let Some(o) = v.as_object_mut() {
                        o.remove("secretHash");
                    }
                    v
                })
                .collect();
            print(&json!(rows))
        }
        OauthClientsCommand::Add { target, name, roles, divisions, token_ttl } => {
            let c = console(config, &target).await?;
            let req = ops::CreateClient {
                name,
                description: String::new(),
                role_ids: c.named_ids(RecordKind::Role, "role", &roles).await?,
                division_ids: c.named_ids(RecordKind::Division, "division", &divisions).await?,
                access_token_validity_seconds: Some(token_ttl),
            };
            let v = ops::add_client(&c.state, &c.caller, req).await.map_err(api)?;
            eprintln!("The secret is shown once; keep it secret.");
            print(&v)
        }
        OauthClientsCommand::Remove { target, id } => {
            let c = console(config, &target).await?;
            ops::remove_client(&c.state, &c.caller, &id).await.map_err(api)?;
            eprintln!("deleted OAuth client {id}");
            Ok(())
        }
    }
    .context("OAuth client command failed")
}

#[cfg(test)]
mod tests {
    use crate::cli::{AdminCommand, Cli, Command};
    use clap::{CommandFactory, Parser};

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn admin_commands_parse() {
        let cli = Cli::try_parse_from([
            "waymark",
            "admin",
            "users",
            "add",
            "--data",
            "/tmp/x",
            "--org",
            "Acme",
            "--email",
            "a@b.example",
            "--name",
            "A",
            "--role",
            "User",
            "--role",
            "Scores",
        ])
        .expect("parse");
        match cli.command {
            Command::Admin(AdminCommand::Users(super::UsersCommand::Add { roles, target, .. })) => {
                assert_eq!(roles, ["User", "Scores"]);
                assert_eq!(target.org, "Acme");
            }
            other => panic!("{other:?}"),
        }
        for args in [
            &[
                "waymark",
                "admin",
                "deployments",
                "add",
                "Blog",
                "--domain",
                "blog.example",
                "--exclude-ip",
                "10.0.0.0/8",
            ][..],
            &["waymark", "admin", "tokens", "issue", "--user", "a@b.example", "--expires-in-days", "7"],
            &["waymark", "admin", "oauth-clients", "add", "crm", "--role", "User"],
            &["waymark", "admin", "roles", "add", "Scores", "--permission", "journey:outcomescores:view"],
        ] {
            Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
        assert!(Cli::try_parse_from(["waymark", "admin", "tokens", "issue"]).is_err(), "--user is required");
    }
}
