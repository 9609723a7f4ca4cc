//! Reading PEM files: certificate chains, private keys, CA bundles, each
//! failure naming the setting and the file.

use std::path::Path;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{file_error, TlsError};

pub fn read_certs(
    setting: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| file_error(setting, path, e))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(setting, path, e))?;
    if certs.is_empty() {
        return Err(file_error(setting, path, "no PEM certificate in it"));
    }
    Ok(certs)
}

pub fn read_key(setting: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| file_error(setting, path, e))?;
    // Never the key's bytes in a message: only that it is not a key.
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| {
        file_error(
            setting,
            path,
            "no PEM private key (PKCS#8, PKCS#1 or SEC1) in it",
        )
    })
}

pub fn read_roots(setting: &'static str, path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(setting, path)? {
        roots.add(cert).map_err(|e| file_error(setting, path, e))?;
    }
    Ok(roots)
}
