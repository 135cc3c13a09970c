//! Where the load test's tenants come from: signed up by the run, read back from a file a
//! previous run saved, or placeholders for a single-tenant baseline server that takes no token.
//! And which tenant each request of the traffic phase speaks for.

use std::io::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::cli::exit::{CliError, Exit};
use crate::http_client::Auth;

/// A registered tenant and the token of its admin (empty for a baseline server: no token sent).
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Session {
    pub(crate) tenant_id: String,
    pub(crate) token: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("tenant_id", &self.tenant_id)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// How this session's requests authenticate.
    pub(crate) fn auth(&self) -> Auth<'_> {
        if self.token.is_empty() {
            Auth::None
        } else {
            Auth::Bearer(&self.token)
        }
    }
}

/// `count` sessions of a single-tenant baseline server: no tenant, no token.
pub(crate) fn baseline(count: u32) -> Vec<Session> {
    (0..count)
        .map(|_| Session {
            tenant_id: "baseline".to_owned(),
            token: String::new(),
        })
        .collect()
}

/// The sessions a previous run saved with [`save`].
///
/// # Errors
/// [`CliError`] (usage) when the file cannot be read, is not a list of sessions, or is empty.
pub(crate) fn load(path: &Path) -> Result<Vec<Session>, CliError> {
    let text = std::fs::read(path)
        .map_err(|e| CliError::new(Exit::Usage, format!("--sessions {}: {e}", path.display())))?;
    let sessions: Vec<Session> = serde_json::from_slice(&text).map_err(|e| {
        CliError::new(
            Exit::Usage,
            format!(
                "--sessions {}: not a saved session list: {e}",
                path.display()
            ),
        )
    })?;
    if sessions.is_empty() {
        return Err(CliError::new(
            Exit::Usage,
            format!("--sessions {}: no sessions", path.display()),
        ));
    }
    Ok(sessions)
}

/// Writes `sessions` (tenant ids and access tokens) to a new file only its owner can read.
///
/// # Errors
/// [`CliError`] (failure) when the file cannot be written.
pub(crate) fn save(path: &Path, sessions: &[Session]) -> Result<(), CliError> {
    let failed = |e: std::io::Error| {
        CliError::new(
            Exit::Failure,
            format!("--save-sessions {}: {e}", path.display()),
        )
    };
    let json = serde_json::to_vec(sessions)
        .map_err(|e| CliError::new(Exit::Failure, format!("--save-sessions: {e}")))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(failed)?;
    file.write_all(&json).map_err(failed)?;
    file.sync_all().map_err(failed)
}

/// The session that the `request`-th request of client `client` (of `clients`) speaks for.
///
/// While there are no more sessions than clients, each client keeps to one tenant
/// (`client % sessions`), as a user of one organisation would. With more sessions than
/// clients, each client moves `clients` sessions on with every request, so that together the
/// clients cycle through every tenant.
pub(crate) fn session_index(client: u64, request: u64, clients: u64, sessions: usize) -> usize {
    let sessions = u64::try_from(sessions).unwrap_or(u64::MAX).max(1);
    let index = if sessions <= clients {
        client % sessions
    } else {
        (client % sessions + (request % sessions) * (clients % sessions)) % sessions
    };
    usize::try_from(index).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn clients_keep_to_one_tenant_while_there_are_enough_clients() {
        for request in 0..50 {
            assert_eq!(session_index(5, request, 64, 20), 5);
            assert_eq!(session_index(45, request, 64, 20), 5);
            assert_eq!(session_index(3, request, 8, 8), 3);
        }
    }

    #[test]
    fn with_more_tenants_than_clients_every_tenant_gets_traffic() {
        for (clients, sessions) in [(64u64, 1000usize), (7, 10), (1, 3)] {
            let mut seen = BTreeSet::new();
            let rounds = u64::try_from(sessions).unwrap_or(0) / clients + 1;
            for request in 0..rounds {
                for client in 0..clients {
                    seen.insert(session_index(client, request, clients, sessions));
                }
            }
            assert_eq!(
                seen.len(),
                sessions,
                "{clients} clients, {sessions} sessions"
            );
            assert!(seen.iter().all(|&i| i < sessions));
        }
    }

    #[test]
    fn saved_sessions_read_back_and_keep_their_tokens_out_of_debug() {
        let dir = std::env::temp_dir().join(format!("tm-sessions-{}", uuid::Uuid::new_v4()));
        let sessions = vec![Session {
            tenant_id: "t1".into(),
            token: "secret-token".into(),
        }];
        let saved = save(&dir, &sessions);
        let loaded = load(&dir);
        let _ = std::fs::remove_file(&dir);
        assert!(saved.is_ok());
        let loaded = loaded.unwrap_or_default();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].token, "secret-token");
        assert!(!format!("{:?}", loaded[0]).contains("secret"));
        assert!(matches!(baseline(3)[2].auth(), Auth::None));
        assert!(load(Path::new("/nonexistent/tm-sessions")).is_err());
    }
}
