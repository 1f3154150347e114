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
        | AdminCommand::ListUsers { database } => database.clone(),
    };
    match open_store(&database).await? {
        AnyStore::Sqlite(store) => with_store(store, command).await,
        AnyStore::Postgres(store) => with_store(store, command).await,
    }
}

#[allow(clippy::print_stdout, reason = "the command's output")]
async fn with_store<S: Store>(store: S, command: AdminCommand) -> anyhow::Result<()> {
    let store = Arc::new(store);
    let app = App::new(Arc::clone(&store), Arc::new(SystemClock));
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
                let user = app
                    .store()
                    .user_by_name(&name)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no user named `{name}`"))?;
                println!("{}", app.create_token_for(&user, &label).await?);
            }
            AdminCommand::ListUsers { .. } => {
                println!("id,name,admin,created_at");
                for user in app.store().list_users().await? {
                    println!(
                        "{},{},{},{}",
                        user.id, user.name, user.is_admin, user.created_at
                    );
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    result
}
