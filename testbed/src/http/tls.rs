//! A self-signed certificate for the TLS variant of the HTTP testbed, made
//! fresh at start-up so no key material lives in the repository.

use std::io;
use std::sync::Arc;

/// A TLS acceptor with a new self-signed certificate for `localhost` and
/// `127.0.0.1`, offering HTTP/2 and HTTP/1.1 over ALPN.
pub fn self_signed_acceptor() -> io::Result<tokio_rustls::TlsAcceptor> {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .map_err(io::Error::other)?;
    let cert = certified.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(io::Error::other)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
