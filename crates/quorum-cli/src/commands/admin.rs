//! `quorum admin`: accounts from the command line, straight against the database.

use std::sync::Arc;

use quorum_app::{App, SystemClock};
use quorum_store::Store;

use super::{AnyStore, open_store};
use crate::cli::AdminCommand;

pub async fn run(command: AdminCommand) -> anyhow::Result<()> {
    let database = match &command {
        AdminCommand::CreateUser { database, .. }
        | AdminCommand::CreateToken { database, .. }
        | AdminCommand::ListUsers { database }
        | AdminCommand::ListTokens { database, .. }
        | AdminCommand::RevokeToken { database, .. }
        | AdminCommand::DisableUser { database, .. }
        | AdminCommand::EnableUser { database, .. }
        | AdminCommand::SetPassword { database, .. } => database.clone(),
    };
    match open_store(&database).await? {
        AnyStore::Sqlite(store) => with_store(store, command).await,
        AnyStore::Postgres(store) => with_store(store, command).await,
    }
}

async fn named<S: Store>(app: &App<S>, name: &str) -> anyhow::Result<quorum_store::User> {
    app.store()
        .user_by_name(name)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user named `{name}`"))
}

#[expect(clippy::print_stdout, reason = "the command's output")]
async fn with_store<S: Store>(store: S, command: AdminCommand) -> anyhow::Result<()> {
    let store = Arc::new(store);
    let app = App::new(Arc::clone(&store), Arc::new(SystemClock));
    let disable = matches!(command, AdminCommand::DisableUser { .. });
    let result = async {
        match command {
            AdminCommand::CreateUser {
                name,
                password,
                admin,
                ..
            } => {
                let user = app.create_user_unchecked(&name, &password, admin).await?;
                println!("created user `{}` (id {})", user.name, user.id);
            }
            AdminCommand::CreateToken { name, label, .. } => {
                let user = named(&app, &name).await?;
                println!("{}", app.create_token_for(&user, &label).await?);
            }
            AdminCommand::ListUsers { .. } => {
                println!("id,name,admin,created_at,disabled_at");
                for user in app.store().list_users().await? {
                    println!(
                        "{},{},{},{},{}",
                        user.id,
                        user.name,
                        user.is_admin,
                        user.created_at,
                        user.disabled_at
                            .map(|at| at.to_string())
                            .unwrap_or_default()
                    );
                }
            }
            AdminCommand::ListTokens { name, .. } => {
                let user = named(&app, &name).await?;
                println!("id,name,session,created_at,expires_at,last_used_at");
                let optional = |at: Option<i64>| at.map(|at| at.to_string()).unwrap_or_default();
                for token in app.store().tokens(user.id).await? {
                    println!(
                        "{},{},{},{},{},{}",
                        token.id,
                        token.name,
                        token.name == quorum_app::accounts::SESSION_NAME,
                        token.created_at,
                        optional(token.expires_at),
                        optional(token.last_used_at)
                    );
                }
            }
            AdminCommand::RevokeToken { name, token_id, .. } => {
                let user = named(&app, &name).await?;
                anyhow::ensure!(
                    app.store().revoke_token(user.id, token_id).await?,
                    "`{name}` has no token {token_id}"
                );
                println!("revoked token {token_id} of `{name}`");
            }
            AdminCommand::DisableUser { name, .. } | AdminCommand::EnableUser { name, .. } => {
                let user = named(&app, &name).await?;
                app.set_disabled_unchecked(user.id, disable).await?;
                let done = if disable { "disabled" } else { "enabled" };
                println!("{done} `{name}`");
            }
            AdminCommand::SetPassword { name, password, .. } => {
                let user = named(&app, &name).await?;
                app.set_password_unchecked(user.id, &password).await?;
                println!("set the password of `{name}`; their web sessions have ended");
            }
        }
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    result
}
