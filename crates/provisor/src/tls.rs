//! HTTPS set-up: the server certificate (PEM files, reloaded on SIGHUP, or a self-signed one
//! kept in the data directory for trials) and optional client-certificate verification
//! against a CA bundle.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use rustls::ServerConfig;
use rustls::crypto::ring;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::Config;
use crate::startup::write_private;

const SELF_SIGNED_CERT: &str = "tls-self-signed.crt";
const SELF_SIGNED_KEY: &str = "tls-self-signed.key";

/// Where the certificate and key come from.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// The configured certificate files, making the self-signed pair first if asked; `None`
/// if HTTPS is not configured.
pub fn files(config: &Config) -> anyhow::Result<Option<TlsFiles>> {
    let (cert, key) = match (&config.tls_cert, &config.tls_key, config.tls_self_signed) {
        (Some(_), _, true) | (_, Some(_), true) => {
            bail!("configuration: tls_self_signed or tls_cert/tls_key, not both")
        }
        (Some(c), Some(k), false) => (c.clone(), k.clone()),
        (None, None, false) => {
            if config.tls_client_ca.is_some() {
                bail!(
                    "configuration: tls_client_ca needs a server certificate (tls_cert and tls_key, or tls_self_signed)"
                );
            }
            return Ok(None);
        }
        (None, None, true) => self_signed(config)?,
        _ => bail!("configuration: tls_cert and tls_key go together"),
    };
    Ok(Some(TlsFiles {
        cert,
        key,
        client_ca: config.tls_client_ca.clone(),
    }))
}

/// A certificate for localhost, 127.0.0.1 and the public HTTPS host, made once and kept.
fn self_signed(config: &Config) -> anyhow::Result<(PathBuf, PathBuf)> {
    let cert = config.data_dir.join(SELF_SIGNED_CERT);
    let key = config.data_dir.join(SELF_SIGNED_KEY);
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Some(host) = config
        .public_https_url
        .as_deref()
        .and_then(|u| u.split_once("://"))
        .map(|(_, rest)| rest.split(['/', ':']).next().unwrap_or(rest).to_owned())
        .filter(|h| !h.is_empty() && !names.contains(h))
    {
        names.push(host);
    }
    let made =
        rcgen::generate_simple_self_signed(names).context("making a self-signed certificate")?;
    write_private(&key, &made.key_pair.serialize_pem())?;
    write_private(&cert, &made.cert.pem())?;
    tracing::info!(path = %cert.display(), "made a self-signed TLS certificate (for trials; phones will not trust it)");
    Ok((cert, key))
}

/// Reads the files into a server configuration (HTTP/2 and HTTP/1.1).
pub fn server_config(files: &TlsFiles) -> anyhow::Result<ServerConfig> {
    let certs = read_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("no private key in {}", files.key.display()))?;
    let provider = Arc::new(ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs(ca)? {
                roots
                    .add(cert)
                    .with_context(|| format!("a certificate in {} cannot be a CA", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .context("the client CA bundle")?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).with_context(|| {
        format!(
            "the certificate in {} does not go with its key",
            files.cert.display()
        )
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not PEM", path.display()))?;
    if certs.is_empty() {
        bail!("no certificate in {}", path.display());
    }
    Ok(certs)
}
