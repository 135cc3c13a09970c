//! The server: [`App::build`] wires everything, [`App::serve`] runs it until a signal.

mod shutdown;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) use self::shutdown::cancel_on_signal;
pub use self::shutdown::{Signal, signalled};
use crate::config::{Config, PgShown};
use crate::router::{self, Parts};
use crate::services::{PoolEngine, Services};
pub use crate::startup_error::StartupError;

/// A built server, bound to its ports, ready to [`serve`](App::serve).
#[derive(Debug)]
pub struct App {
    config: Arc<Config>,
    api: (TcpListener, Router),
    metrics: Option<(TcpListener, Router)>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    pools: Option<Arc<dyn PoolEngine>>,
}

impl App {
    /// Sets up adapters, routes and listeners from `config`.
    ///
    /// The first log line says which adapters run: in memory (embedded mode, no
    /// `GLOBAL_DATABASE_URL`) or Postgres, and Redis when `REDIS_URL` is set.
    ///
    /// # Errors
    /// [`StartupError`] when a backend cannot be set up or a port cannot be bound.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let config = Arc::new(config);
        announce(&config);
        for warning in &config.warnings {
            tracing::warn!("{warning}");
        }
        if config.security.admin_key_generated {
            print_generated_admin_key(&config);
        }
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let metrics = config.features.metrics.then(crate::metrics::handle);
        if let Some(handle) = &metrics {
            tasks.spawn(crate::metrics::upkeep(handle.clone(), shutdown.clone()));
        }
        let services = Services::build(&config, &tasks, &shutdown).await?;
        let pools = services.pools.clone();
        let routers = router::build(&config, Parts { services, metrics })
            .map_err(|e| StartupError::backend("HTTP middleware", e))?;
        let api = (bind(config.http.bind, config.http.port).await?, routers.api);
        let metrics = match (routers.metrics, config.http.metrics_port) {
            (Some(router), Some(port)) => Some((bind(config.http.bind, port).await?, router)),
            _ => None,
        };
        Ok(Self {
            config,
            api,
            metrics,
            shutdown,
            tasks,
            pools,
        })
    }

    /// The address the API listens on (useful with `PORT=0`).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.api.0.local_addr().ok()
    }

    /// The address `/metrics` listens on when it has its own port.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// A token that stops the server when cancelled, as SIGTERM does.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until SIGTERM, ctrl-c or the [`shutdown_token`](App::shutdown_token).
    ///
    /// On shutdown the listeners stop accepting, in-flight requests get
    /// `SHUTDOWN_TIMEOUT_MS` to finish, then background tasks (the provisioning worker
    /// returns its job to the queue) are stopped and awaited and the tenant connection pools
    /// are closed.
    ///
    /// # Errors
    /// [`StartupError::Serve`] when a listener fails.
    pub async fn serve(self) -> Result<(), StartupError> {
        let Self {
            config,
            api,
            metrics,
            shutdown,
            tasks,
            pools,
        } = self;
        tasks.spawn(shutdown::cancel_on_signal(shutdown.clone()));
        if let Ok(addr) = api.0.local_addr() {
            tracing::info!(%addr, "serving the API");
        }
        let api_server = serve_one(api, shutdown.clone());
        let metrics_server = async {
            match metrics {
                Some(m) => {
                    if let Ok(addr) = m.0.local_addr() {
                        tracing::info!(%addr, "serving /metrics");
                    }
                    serve_one(m, shutdown.clone()).await
                }
                None => Ok(()),
            }
        };
        let servers = async { tokio::try_join!(api_server, metrics_server).map(|_| ()) };
        let grace = config.http.shutdown_timeout;
        let deadline = async {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
        };
        let result = tokio::select! {
            r = servers => r,
            () = deadline => {
                tracing::warn!(?grace, "shutdown grace period over: dropping unfinished requests");
                Ok(())
            }
        };
        shutdown.cancel();
        tasks.close();
        tasks.wait().await;
        if let Some(pools) = pools {
            pools.close_all();
        }
        tracing::info!("stopped");
        result.map_err(StartupError::Serve)
    }
}

async fn serve_one(
    (listener, router): (TcpListener, Router),
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await
}

async fn bind(ip: IpAddr, port: u16) -> Result<TcpListener, StartupError> {
    let addr = SocketAddr::new(ip, port);
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })
}

/// The first log line: version, environment and which adapters serve.
fn announce(config: &Config) {
    let version = env!("CARGO_PKG_VERSION");
    let env = config.env.as_str();
    let redis = config.redis.shown();
    match &config.database.global {
        None => tracing::info!(
            mode = "embedded",
            env,
            "reference-server {version} starting in embedded mode: in-memory adapters \
             (GLOBAL_DATABASE_URL is not set){}",
            redis
                .as_deref()
                .map(|r| format!(", Redis at {r}"))
                .unwrap_or_default()
        ),
        Some(global) => tracing::info!(
            mode = "postgres",
            env,
            "reference-server {version} starting on Postgres ({:?}){}",
            PgShown(global),
            redis
                .as_deref()
                .map(|r| format!(" and Redis ({r})"))
                .unwrap_or_default()
        ),
    }
}

fn print_generated_admin_key(config: &Config) {
    tracing::warn!(
        "SUPER_ADMIN_KEY is not set: a key was generated for this run and printed once on stderr"
    );
    eprintln!(
        "\n  SUPER_ADMIN_KEY was not set; generated for this run (development mode only):\n  {}\n",
        config.security.super_admin_key.expose()
    );
}
