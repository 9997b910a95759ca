//! Runs kept in object storage: `s3://` (and S3-compatible stores through
//! `AWS_ENDPOINT`), `gs://`, `az://`/`abfs://`, `http(s)://`, through the `object_store`
//! crate (Apache Arrow's: its credential chains, retries and ranged reads). `file://` is
//! the local file system, followed as a folder.
//!
//! A store run is followed through a local mirror ([`mirror`]): its checkpoint objects
//! are listed every `--poll` seconds and each new or changed one (ETag, size,
//! last-modified) is downloaded whole into a bounded cache folder, where the monitor
//! follows it as it follows any folder. The history lives in that folder, keyed by the
//! URL; a restart reuses both.

pub mod mirror;
pub mod sweep;

use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::http::HttpBuilder;
use object_store::path::Path as StorePath;
use url::Url;

/// Where a run is: a local folder, or a prefix in an object store.
#[derive(Clone, Debug)]
pub enum Location {
    Folder(PathBuf),
    Store(StoreUrl),
}

/// A store URL, checked: its scheme is one camwatch reads and it ends with `/` (a
/// prefix, not an object).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreUrl(Url);

impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{url}: {message}")]
    Url { url: String, message: String },
    #[error("{url}: {}", describe(.source))]
    Store {
        url: String,
        source: object_store::Error,
    },
    #[error("{variable}={path}: {message}")]
    TrustedCas {
        variable: &'static str,
        path: String,
        message: String,
    },
}

/// A store's error in one line: its message, and the innermost of its sources where that
/// says more. A failed connection reads "… error sending request": why (a certificate
/// not trusted, a refused port) is only in the sources.
fn describe(error: &object_store::Error) -> String {
    let first_line = |text: String| text.lines().next().unwrap_or_default().to_string();
    let message = first_line(error.to_string());
    let cause = std::iter::successors(std::error::Error::source(error), |e| e.source())
        .last()
        .map(|cause| first_line(cause.to_string()))
        .filter(|cause| !message.contains(cause.as_str()));
    match cause {
        Some(cause) if cause.contains("UnknownIssuer") => format!(
            "{message}: {cause} (a private CA is trusted by naming its PEM file in \
             SSL_CERT_FILE)"
        ),
        Some(cause) => format!("{message}: {cause}"),
        None => message,
    }
}

/// HTTPS servers are trusted by the system's CAs, or, where `SSL_CERT_FILE` or
/// `SSL_CERT_DIR` is set, by those alone (rustls-native-certs, under object_store's
/// client). One that names nothing usable would fail every store, plain HTTP too, as
/// "builder error": it is said here, by name.
fn check_trusted_cas() -> Result<(), StoreError> {
    use std::io::Read;
    // A system's whole bundle is a few hundred KB.
    const LIMIT: u64 = 64 << 20;
    const PEM_CERTIFICATE: &[u8] = b"-----BEGIN CERTIFICATE-----";
    let fail = |variable, path: &std::path::Path, message: String| StoreError::TrustedCas {
        variable,
        path: path.display().to_string(),
        message,
    };
    if let Some(file) = std::env::var_os("SSL_CERT_FILE") {
        let path = std::path::Path::new(&file);
        let mut text = Vec::new();
        std::fs::File::open(path)
            .and_then(|file| file.take(LIMIT).read_to_end(&mut text))
            .map_err(|e| fail("SSL_CERT_FILE", path, e.to_string()))?;
        if !text
            .windows(PEM_CERTIFICATE.len())
            .any(|w| w == PEM_CERTIFICATE)
        {
            return Err(fail(
                "SSL_CERT_FILE",
                path,
                "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
            ));
        }
    }
    if let Some(dirs) = std::env::var_os("SSL_CERT_DIR") {
        for dir in std::env::split_paths(&dirs).filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                return Err(fail("SSL_CERT_DIR", &dir, "not a folder".into()));
            }
        }
    }
    Ok(())
}

/// The variables that give object_store's GCS client its credentials.
const GCS_CREDENTIALS: [&str; 4] = [
    "GOOGLE_SERVICE_ACCOUNT",
    "GOOGLE_SERVICE_ACCOUNT_PATH",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
    "GOOGLE_APPLICATION_CREDENTIALS",
];

const SCHEMES: [&str; 7] = ["s3", "gs", "az", "abfs", "abfss", "http", "https"];

impl Location {
    /// `arg` as the user gave it: a URL with a scheme camwatch reads, or a folder.
    pub fn parse(arg: &std::path::Path) -> Result<Location, StoreError> {
        let Some(text) = arg.to_str().filter(|t| t.contains("://")) else {
            return Ok(Location::Folder(arg.to_path_buf()));
        };
        let url = Url::parse(text).map_err(|e| StoreError::Url {
            url: text.to_string(),
            message: e.to_string(),
        })?;
        if url.scheme() == "file" {
            return url
                .to_file_path()
                .map(Location::Folder)
                .map_err(|()| StoreError::Url {
                    url: text.to_string(),
                    message: "not a local path".into(),
                });
        }
        if !SCHEMES.contains(&url.scheme()) {
            return Err(StoreError::Url {
                url: text.to_string(),
                message: format!(
                    "camwatch reads s3://, gs://, az://, abfs://, http(s):// and file:// runs, \
                     not {}://",
                    url.scheme()
                ),
            });
        }
        Ok(Location::Store(StoreUrl::prefix(url)))
    }
}

impl StoreUrl {
    /// The URL with a trailing `/`: the run is everything under it.
    fn prefix(mut url: Url) -> StoreUrl {
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        StoreUrl(url)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The URL of `key`, a path under the prefix.
    pub fn join(&self, key: &str) -> String {
        format!("{}{key}", self.0)
    }

    /// The bucket (or container, or host) the run is in.
    pub fn bucket(&self) -> &str {
        self.0.host_str().unwrap_or("")
    }

    /// Where the run's objects and history are kept on this machine: a folder named
    /// after the URL (readable, and a hash so that two URLs never share one) under
    /// `root`, by default the user's cache folder.
    pub fn cache_folder(&self, root: Option<&std::path::Path>) -> PathBuf {
        let root = match root {
            Some(root) => root.to_path_buf(),
            None => dirs::cache_dir()
                .unwrap_or_else(std::env::temp_dir)
                .join("camwatch")
                .join("stores"),
        };
        let readable: String = format!("{}{}", self.bucket(), self.0.path())
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(80)
            .collect();
        let hash = blake3::hash(self.0.as_str().as_bytes()).to_hex();
        root.join(format!("{}-{}", readable.trim_matches('_'), &hash[..16]))
    }

    /// The store and the run's prefix in it, with credentials and endpoint from the
    /// standard environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`) and the instance or role
    /// chains where the store supports them.
    pub fn open(&self) -> Result<OpenStore, StoreError> {
        let url = self.0.as_str();
        let fail = |source| StoreError::Store {
            url: url.to_string(),
            source,
        };
        check_trusted_cas()?;
        // The clients' HTTPS is reqwest's `rustls-no-provider` (Cargo.toml: ring, not
        // AWS-LC): reqwest takes rustls's process-wide provider, and panics on building a
        // client when none is installed, so ring is made that provider before any is
        // built. An error only says one is installed already (a second store).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let store: Arc<dyn ObjectStore> = match self.0.scheme() {
            "s3" => Arc::new(
                AmazonS3Builder::from_env()
                    .with_url(url)
                    .build()
                    .map_err(fail)?,
            ),
            "gs" => Arc::new(
                GoogleCloudStorageBuilder::from_env()
                    .with_url(url)
                    .build()
                    .map_err(fail)?,
            ),
            "az" | "abfs" | "abfss" => Arc::new(
                MicrosoftAzureBuilder::from_env()
                    .with_url(url)
                    .build()
                    .map_err(fail)?,
            ),
            _ => Arc::new(
                HttpBuilder::new()
                    .with_url(&self.0[..url::Position::BeforePath])
                    .build()
                    .map_err(fail)?,
            ),
        };
        // The bucket or container is in the host (or user) part: the path is the prefix.
        let prefix = StorePath::from_url_path(self.0.path()).map_err(|e| StoreError::Url {
            url: url.to_string(),
            message: e.to_string(),
        })?;
        Ok(OpenStore {
            url: self.clone(),
            store,
            prefix,
            credentials: self.credential_source(),
        })
    }

    /// Which credentials the store uses, as a user would look for them (never their
    /// values).
    fn credential_source(&self) -> String {
        let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
        match self.0.scheme() {
            "s3" if set("AWS_ACCESS_KEY_ID") => "AWS_ACCESS_KEY_ID from the environment".into(),
            "s3" if set("AWS_WEB_IDENTITY_TOKEN_FILE") => {
                "the web identity token (AWS_WEB_IDENTITY_TOKEN_FILE)".into()
            }
            "s3" => "the instance's credentials (no AWS_ACCESS_KEY_ID set)".into(),
            // In object_store's order: a service account's key before the application
            // default credentials.
            "gs" => match GCS_CREDENTIALS.into_iter().find(|name| set(name)) {
                Some(name) => name.into(),
                None => "the instance's credentials (no GOOGLE_SERVICE_ACCOUNT or \
                         GOOGLE_APPLICATION_CREDENTIALS set)"
                    .into(),
            },
            "az" | "abfs" | "abfss" if set("AZURE_STORAGE_USE_EMULATOR") => {
                "the Azurite emulator's account (AZURE_STORAGE_USE_EMULATOR)".into()
            }
            "az" | "abfs" | "abfss" if set("AZURE_STORAGE_ACCOUNT_KEY") => {
                "AZURE_STORAGE_ACCOUNT_KEY from the environment".into()
            }
            "az" | "abfs" | "abfss" => {
                "Azure's default chain (no AZURE_STORAGE_ACCOUNT_KEY set)".into()
            }
            _ => "none (a public HTTP server)".into(),
        }
    }
}

/// An opened store and where the run is in it.
#[derive(Clone, Debug)]
pub struct OpenStore {
    pub url: StoreUrl,
    pub store: Arc<dyn ObjectStore>,
    pub prefix: StorePath,
    pub credentials: String,
}

impl OpenStore {
    /// An error of the store, said in one line that names the bucket, the key and, when
    /// access was refused, the credentials used.
    pub fn explain(&self, key: Option<&str>, error: &object_store::Error) -> String {
        let what = match key {
            Some(key) => self.url.join(key),
            None => self.url.to_string(),
        };
        let denied = matches!(
            error,
            object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
        ) || error.to_string().contains("403");
        if denied {
            format!(
                "{what}: access denied (bucket {}, credentials: {})",
                self.url.bucket(),
                self.credentials
            )
        } else {
            format!("{what}: {}", describe(error))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_folders() {
        let store = |s: &str| match Location::parse(std::path::Path::new(s)).unwrap() {
            Location::Store(url) => url.to_string(),
            Location::Folder(path) => format!("folder {}", path.display()),
        };
        assert_eq!(store("s3://bucket/sweep"), "s3://bucket/sweep/");
        assert_eq!(store("gs://b/run/"), "gs://b/run/");
        assert_eq!(store("file:///data/run"), "folder /data/run");
        assert_eq!(store("runs/a"), "folder runs/a");
        assert!(Location::parse(std::path::Path::new("ftp://host/x")).is_err());
    }

    #[test]
    fn cache_folders_differ_by_url() {
        let url = |s: &str| match Location::parse(std::path::Path::new(s)).unwrap() {
            Location::Store(url) => url,
            Location::Folder(_) => unreachable!(),
        };
        let root = std::path::Path::new("/cache");
        let a = url("s3://bucket/run-a/").cache_folder(Some(root));
        let b = url("s3://bucket/run_a/").cache_folder(Some(root));
        assert_ne!(a, b);
        assert!(
            a.to_str().unwrap().starts_with("/cache/bucket_run-a-"),
            "{}",
            a.display()
        );
    }
}
