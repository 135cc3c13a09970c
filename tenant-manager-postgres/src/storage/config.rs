//! `StorageConfig`: the names of a deployment's own objects, and their validated form.

use tenant_manager_core::{Error, Result, StorageNaming};

use crate::app_login::app_login_name;
use crate::ident::{Ident, MAX_IDENT_LEN};

/// Names used by the provisioner besides the tenants' own.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StorageConfig {
    /// The deployment's storage prefix: it marks the shared databases this deployment may use
    /// (`COMMENT ON DATABASE ... IS 'tenant-manager:shared:<prefix>'`) and names the
    /// deployment's own objects by default (see [`StorageConfig::for_naming`]). Default `tm`.
    pub naming: StorageNaming,
    /// Create database-isolated tenants from a template database migrated once per version of
    /// the migration set (the fast path). Default `true`.
    pub use_template: bool,
    /// Prefix of template database names (`<prefix><digest>`). Default `tm_template_`.
    pub template_prefix: String,
    /// Role (no login) owning the objects of template databases; each new tenant database
    /// reassigns them to the tenant role. Default `tm_template_owner`.
    pub template_owner: String,
    /// Role (no login, not a superuser) owning the shared tables of [`Isolation::Shared`](tenant_manager_core::Isolation::Shared)
    /// tenants, so forced row-level security applies to it too. Default `tm_shared_owner`.
    pub shared_owner: String,
    /// Schema of the shared tables. Default `public`.
    pub shared_schema: String,
    /// The unprivileged login of pools shared by schema- and row-isolated tenants (see
    /// [`crate::app_login`]), or `None` to keep them on the admin login (not recommended:
    /// superusers bypass row-level security and read every schema). Provisioning grants it
    /// each schema tenant's role and the shared tables, creating it (`NOLOGIN`) when missing;
    /// [`crate::PostgresProvisioner::ensure_app_login`] gives it its password. A valid
    /// identifier not starting with `tenant_` or `pg_`. Default [`DEFAULT_APP_LOGIN`](crate::DEFAULT_APP_LOGIN)
    /// (`tm_app`).
    pub app_login: Option<String>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self::for_naming(StorageNaming::default())
    }
}

impl StorageConfig {
    /// The names of a deployment with this storage prefix: templates `<prefix>_template_*`
    /// owned by `<prefix>_template_owner`, shared tables owned by `<prefix>_shared_owner`, app
    /// login `<prefix>_app` (with the default prefix `tm`: `tm_template_*`, ...,
    /// [`DEFAULT_APP_LOGIN`](crate::DEFAULT_APP_LOGIN)).
    pub fn for_naming(naming: StorageNaming) -> Self {
        Self {
            use_template: true,
            template_prefix: naming.infra("template_"),
            template_owner: naming.infra("template_owner"),
            shared_owner: naming.infra("shared_owner"),
            shared_schema: "public".to_owned(),
            app_login: Some(naming.infra("app")),
            naming,
        }
    }

    /// Turns the template fast path on or off.
    #[must_use]
    pub fn with_template(mut self, use_template: bool) -> Self {
        self.use_template = use_template;
        self
    }

    /// Sets the template name prefix.
    #[must_use]
    pub fn with_template_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.template_prefix = prefix.into();
        self
    }

    /// Sets the template owner role.
    #[must_use]
    pub fn with_template_owner(mut self, role: impl Into<String>) -> Self {
        self.template_owner = role.into();
        self
    }

    /// Sets the owner role of the shared tables.
    #[must_use]
    pub fn with_shared_owner(mut self, role: impl Into<String>) -> Self {
        self.shared_owner = role.into();
        self
    }

    /// Sets the schema of the shared tables.
    #[must_use]
    pub fn with_shared_schema(mut self, schema: impl Into<String>) -> Self {
        self.shared_schema = schema.into();
        self
    }

    /// Sets the name of the app login.
    #[must_use]
    pub fn with_app_login(mut self, role: impl Into<String>) -> Self {
        self.app_login = Some(role.into());
        self
    }

    /// Grants nothing to an app login: pools shared by tenants stay on the admin login.
    #[must_use]
    pub fn without_app_login(mut self) -> Self {
        self.app_login = None;
        self
    }
}

/// The validated form of [`StorageConfig`].
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) config: StorageConfig,
    pub(crate) template_owner: Ident,
    pub(crate) shared_owner: Ident,
    pub(crate) shared_schema: Ident,
    pub(crate) app_login: Option<Ident>,
    /// Owner of the wall in databases of schema and shared tenants (`<prefix>_wall`).
    pub(crate) wall_owner: Ident,
    /// Role whose members may evaluate the wall's policies (`<prefix>_wall_reader`).
    pub(crate) wall_reader: Ident,
}

impl Settings {
    pub(super) fn new(config: StorageConfig) -> Result<Self> {
        // The template name is the prefix and 16 hex digits, with `_b` while it is built.
        if config.template_prefix.len() + 18 > MAX_IDENT_LEN {
            return Err(Error::invalid(
                "template_prefix",
                "must be at most 45 bytes",
            ));
        }
        Ident::new(&format!("{}x", config.template_prefix), "template_prefix")?;
        let template_owner = infra_name(&config, &config.template_owner, "template_owner")?;
        let shared_owner = infra_name(&config, &config.shared_owner, "shared_owner")?;
        let app_login = config
            .app_login
            .as_deref()
            .map(app_login_name)
            .transpose()?;
        if let Some(app) = &app_login {
            infra_name(&config, app.as_str(), "app_login")?;
        }
        if app_login
            .as_ref()
            .is_some_and(|a| *a == template_owner || *a == shared_owner)
        {
            return Err(Error::invalid(
                "app_login",
                "must differ from the template and shared owner roles",
            ));
        }
        let wall_owner = Ident::new(&config.naming.infra("wall"), "wall_owner")?;
        let wall_reader = Ident::new(&config.naming.infra("wall_reader"), "wall_reader")?;
        Ok(Self {
            template_owner,
            shared_owner,
            shared_schema: Ident::new(&config.shared_schema, "shared_schema")?,
            app_login,
            wall_owner,
            wall_reader,
            config,
        })
    }
}

/// Validates the name of one of the deployment's own roles: an identifier outside the
/// tenants' namespace (`<prefix>_t_*`).
fn infra_name(config: &StorageConfig, name: &str, field: &'static str) -> Result<Ident> {
    if config.naming.is_tenant_object(name) {
        return Err(Error::invalid(
            field,
            "must not be named like a tenant's object (<prefix>_t_*)",
        ));
    }
    Ident::new(name, field)
}
