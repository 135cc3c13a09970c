//! A small JSON-over-HTTP/1 client with keep-alive pooling, for `tenant-cli loadtest` and the
//! end-to-end tests. Plain `http://` only: run it next to the server, or behind a TLS
//! terminating proxy's internal address.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;

/// Why a request failed before an HTTP answer arrived (or its body could not be read).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The base URL or a path is not usable.
    #[error("invalid URL {0:?}: {1}")]
    InvalidUrl(String, &'static str),
    /// Connecting or sending failed.
    #[error("request failed: {0}")]
    Request(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// No answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The answer's body is not the expected JSON.
    #[error("unexpected answer body (status {status}): {source}")]
    Json {
        /// Status of the answer.
        status: StatusCode,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

/// How a request authenticates.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Auth<'a> {
    /// No credentials.
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(&'a str),
    /// `X-Admin-Key: <key>`.
    AdminKey(&'a str),
}

/// An HTTP answer, body fully read.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl HttpResponse {
    /// The body parsed as JSON.
    ///
    /// # Errors
    /// [`ClientError::Json`] when it is not `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        serde_json::from_slice(&self.body).map_err(|source| ClientError::Json {
            status: self.status,
            source,
        })
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A pooled client bound to one base URL such as `http://127.0.0.1:3001`.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: Client<HttpConnector, Full<Bytes>>,
    base: String,
    timeout: Duration,
}

impl HttpClient {
    /// A client for `base_url` (`http://host:port`, no path), with a 30 s request timeout.
    ///
    /// # Errors
    /// [`ClientError::InvalidUrl`] when the URL is not `http://host[:port]`.
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        let base = base_url.trim_end_matches('/').to_owned();
        let uri: Uri = base
            .parse()
            .map_err(|_| ClientError::InvalidUrl(base.clone(), "does not parse"))?;
        if uri.scheme_str() != Some("http") || uri.authority().is_none() {
            return Err(ClientError::InvalidUrl(base, "must be http://host[:port]"));
        }
        if !matches!(uri.path(), "" | "/") {
            return Err(ClientError::InvalidUrl(base, "must not have a path"));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(1024)
            .build(connector);
        Ok(Self {
            inner,
            base,
            timeout: Duration::from_secs(30),
        })
    }

    /// Sets the per-request timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Sends a request with an optional JSON body and reads the whole answer.
    ///
    /// # Errors
    /// [`ClientError`] when no HTTP answer could be had; HTTP error statuses are answers.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        body: Option<&serde_json::Value>,
    ) -> Result<HttpResponse, ClientError> {
        if !path.starts_with('/') {
            return Err(ClientError::InvalidUrl(
                path.to_owned(),
                "path must start with /",
            ));
        }
        let url = format!("{}{path}", self.base);
        let mut builder = Request::builder().method(method).uri(&url);
        match auth {
            Auth::None => {}
            Auth::Bearer(token) => {
                builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
            }
            Auth::AdminKey(key) => builder = builder.header("x-admin-key", key),
        }
        let payload = match body {
            Some(json) => {
                builder = builder.header(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                Bytes::from(serde_json::to_vec(json).unwrap_or_default())
            }
            None => Bytes::new(),
        };
        let request = builder
            .body(Full::new(payload))
            .map_err(|_| ClientError::InvalidUrl(url, "not a valid request"))?;
        let exchange = async {
            let response = self
                .inner
                .request(request)
                .await
                .map_err(|e| ClientError::Request(Box::new(e)))?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| ClientError::Request(Box::new(e)))?
                .to_bytes();
            Ok(HttpResponse {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout(self.timeout))?
    }

    /// `GET path`.
    ///
    /// # Errors
    /// As [`HttpClient::send`].
    pub async fn get(&self, path: &str, auth: Auth<'_>) -> Result<HttpResponse, ClientError> {
        self.send(Method::GET, path, auth, None).await
    }

    /// `POST path` with a JSON body.
    ///
    /// # Errors
    /// As [`HttpClient::send`].
    pub async fn post(
        &self,
        path: &str,
        auth: Auth<'_>,
        body: &serde_json::Value,
    ) -> Result<HttpResponse, ClientError> {
        self.send(Method::POST, path, auth, Some(body)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_base_urls_are_accepted() {
        assert!(HttpClient::new("http://127.0.0.1:3001/").is_ok());
        for bad in [
            "https://x.com",
            "127.0.0.1:3001",
            "http://x.com/api",
            "ftp://x",
        ] {
            assert!(HttpClient::new(bad).is_err(), "{bad}");
        }
    }
}
