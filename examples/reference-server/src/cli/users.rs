//! `tenant-cli users ...`: the users of a tenant, managed by the operator.

use clap::Subcommand;
use serde::Serialize;
use tenant_manager::postgres::PostgresRefreshTokens;
use tenant_manager::{User, UserId};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::exit::{CliError, Exit};
use super::ops::{Ops, print_json};
use crate::services::sessions;

/// `tenant-cli users ...`.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum UsersCommand {
    /// List a tenant's users, oldest first.
    List {
        /// Tenant id or slug.
        tenant: String,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Invite an e-mail to a tenant as the operator (the tenant's users quota applies). Prints
    /// the invitation and its token, once: send it to the invitee, who accepts it with
    /// `POST /api/auth/accept-invitation`.
    Invite {
        /// Tenant id or slug.
        tenant: String,
        /// The invitee's e-mail.
        email: String,
        /// The role the user gets.
        #[arg(long, default_value = "member", value_parser = ["member", "admin", "owner"])]
        role: String,
    },
    /// Remove a user from a tenant and revoke its refresh tokens. The last owner stays.
    Remove {
        /// Tenant id or slug.
        tenant: String,
        /// The user's id.
        user: String,
    },
}

/// A user as printed.
#[derive(Debug, Serialize)]
struct UserLine {
    id: Uuid,
    email: String,
    role: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

impl From<&User> for UserLine {
    fn from(u: &User) -> Self {
        Self {
            id: *u.id.as_uuid(),
            email: u.email.to_string(),
            role: u.role.to_string(),
            created_at: u.created_at,
        }
    }
}

/// A new invitation as printed, with its token (stdout only).
#[derive(Serialize)]
struct InvitedLine {
    id: Uuid,
    email: String,
    role: String,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    token: String,
}

/// Runs one `users` action.
pub(crate) async fn run(ops: &Ops, action: UsersCommand) -> Result<Exit, CliError> {
    match action {
        UsersCommand::List { tenant, json } => {
            let tenant = ops.tenant(&tenant).await?;
            let users = ops.manager.registry().list_users(tenant.id).await?;
            if json {
                for user in &users {
                    let line = serde_json::to_string(&UserLine::from(user)).unwrap_or_default();
                    println!("{line}");
                }
            } else {
                println!("{:<36}  {:<8}  {:<25}  email", "id", "role", "created");
                for u in &users {
                    println!(
                        "{:<36}  {:<8}  {:<25}  {}",
                        u.id.to_string(),
                        u.role.to_string(),
                        u.created_at.format(&Rfc3339).unwrap_or_default(),
                        u.email
                    );
                }
            }
            Ok(Exit::Success)
        }
        UsersCommand::Invite {
            tenant,
            email,
            role,
        } => {
            let tenant = ops.tenant(&tenant).await?;
            let ttl = ops.config.security.invitation_ttl;
            let invited = ops
                .manager
                .invite_user_as_operator(&tenant, &email, &role, ttl)
                .await?;
            let invitation = &invited.invitation;
            print_json(&InvitedLine {
                id: *invitation.id.as_uuid(),
                email: invitation.email.to_string(),
                role: invitation.role.to_string(),
                expires_at: invitation.expires_at,
                token: invited.token.expose().to_owned(),
            });
            Ok(Exit::Success)
        }
        UsersCommand::Remove { tenant, user } => {
            let tenant = ops.tenant(&tenant).await?;
            let user = UserId::parse_field(&user, "user")?;
            let removed = ops.manager.remove_user_as_operator(tenant.id, user).await?;
            let store = PostgresRefreshTokens::new(ops.postgres.registry.pool().clone());
            let revoked = sessions::end_all_in(&store, removed.id).await?;
            print_json(&serde_json::json!({
                "removed": UserLine::from(&removed),
                "refresh_tokens_revoked": revoked,
            }));
            Ok(Exit::Success)
        }
    }
}
