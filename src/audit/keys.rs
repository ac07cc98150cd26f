//! Ed25519 key files for signed checkpoints: the private key as PEM PKCS#8
//! (`-----BEGIN PRIVATE KEY-----`), the public key as PEM SubjectPublicKeyInfo
//! (`-----BEGIN PUBLIC KEY-----`). These are OpenSSL's formats, so
//! `openssl genpkey -algorithm ed25519` makes a usable key too.

use super::chain::{line_hash, to_hex};
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, KeypairBytes,
};
use ed25519_dalek::{SigningKey, VerifyingKey};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why a key file could not be read or written.
#[derive(Debug, Error)]
pub enum KeyError {
    /// The file could not be read or created.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a key of the expected kind.
    #[error("{}: not an Ed25519 {what} in PEM ({reason})", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// `private key (PKCS#8)` or `public key (SPKI)`.
        what: &'static str,
        /// The decoder's complaint.
        reason: String,
    },
    /// The operating system's random source failed.
    #[error("no randomness for a new key: {0}")]
    Random(String),
}

/// Reads an Ed25519 private key (PEM PKCS#8).
pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let text = read(path)?;
    SigningKey::from_pkcs8_pem(&text).map_err(|e| KeyError::Format {
        path: path.to_owned(),
        what: "private key (PKCS#8)",
        reason: e.to_string(),
    })
}

/// Reads an Ed25519 public key (PEM SPKI).
pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    let text = read(path)?;
    VerifyingKey::from_public_key_pem(text.trim()).map_err(|e| KeyError::Format {
        path: path.to_owned(),
        what: "public key (SPKI)",
        reason: e.to_string(),
    })
}

/// Short name of a public key written into checkpoints: the first 8 bytes
/// of its SHA-256, in hex, so a verifier can tell "wrong key" from "forged".
pub fn key_id(key: &VerifyingKey) -> String {
    to_hex(line_hash(key.as_bytes()).get(..8).unwrap_or_default())
}

/// Makes a new key pair: the private key at `out` (mode 0600, never
/// overwriting a file) and the public key at `out.pub`. Returns the `.pub` path.
pub fn generate(out: &Path) -> Result<PathBuf, KeyError> {
    use rand::TryRngCore;
    let mut seed = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut seed)
        .map_err(|e| KeyError::Random(e.to_string()))?;
    let key = SigningKey::from_bytes(&seed);
    let format = |e: &dyn std::fmt::Display| KeyError::Format {
        path: out.to_owned(),
        what: "private key (PKCS#8)",
        reason: e.to_string(),
    };
    // PKCS#8 v1, without the optional public key: OpenSSL 3.0 cannot read v2.
    let v1 = KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    let private = v1.to_pkcs8_pem(LineEnding::LF).map_err(|e| format(&e))?;
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| format(&e))?;
    let mut pub_path = out.as_os_str().to_owned();
    pub_path.push(".pub");
    let pub_path = PathBuf::from(pub_path);
    write_new(out, private.as_bytes(), 0o600)?;
    write_new(&pub_path, public.as_bytes(), 0o644)?;
    Ok(pub_path)
}

fn read(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Creates `path` with `mode` (refusing an existing file) and writes `data`.
fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    f.write_all(data).and_then(|()| f.sync_all()).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_keys_load_and_match() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        let pub_path = generate(&path).unwrap();
        assert_eq!(pub_path, dir.path().join("audit.key.pub"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let sk = load_signing_key(&path).unwrap();
        let vk = load_verifying_key(&pub_path).unwrap();
        assert_eq!(sk.verifying_key(), vk);
        assert_eq!(key_id(&vk).len(), 16);
        // Never overwrites a key.
        let e = generate(&path).unwrap_err();
        assert!(e.to_string().contains("audit.key"), "{e}");
        // Two keys differ.
        let other = generate(&dir.path().join("other.key")).unwrap();
        assert_ne!(load_verifying_key(&other).unwrap(), vk);
    }

    #[test]
    fn bad_key_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        std::fs::write(&path, "not a key").unwrap();
        let e = load_signing_key(&path).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}: not an Ed25519 private key", path.display())),
            "{e}"
        );
        let e = load_verifying_key(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(e, KeyError::Io { .. }), "{e}");
        // A public key is not a private key.
        let pub_path = generate(&dir.path().join("a.key")).unwrap();
        assert!(load_signing_key(&pub_path).is_err());
    }
}
