//! ed25519 keys for signing plugin bundles, and the keys a host trusts.
//!
//! Files: `NAME.key` holds the secret key (hex, readable by its owner only),
//! `NAME.pub` the public key (`ed25519 HEX`). A key's id is the first 8 bytes
//! of its public key, in hex.

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use super::bundle::{Bundle, Signature};

/// Why a key file cannot be used, or a signature is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    /// A key file could not be read or written.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The plugin is not signed, and this host requires signatures.
    #[error(
        "the plugin is not signed, and this host only runs plugins signed by a trusted key; sign it with `eddy plugin sign`"
    )]
    Unsigned,
    /// Signed, by a key this host does not trust.
    #[error("the plugin is signed by key {0}, which this host does not trust (see [trust] keys)")]
    UntrustedKey(String),
    /// The signature does not match the contents.
    #[error(
        "the plugin's signature (key {0}) does not verify: the bundle was altered after it was signed"
    )]
    BadSignature(String),
}

/// A key's short id: its first 8 bytes, in hex.
pub fn key_id(key: &[u8; 32]) -> String {
    hex(&key[..8])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn file_error(path: &Path, reason: impl ToString) -> SigningError {
    SigningError::File {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// Makes a new key pair: writes `NAME.key` (mode 0600) and `NAME.pub` in
/// `dir`; returns their paths and the key id.
pub fn generate(dir: &Path, name: &str) -> Result<(PathBuf, PathBuf, String), SigningError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| file_error(dir, e))?;
    let key = SigningKey::from_bytes(&secret);
    let public = key.verifying_key().to_bytes();
    let (secret_path, public_path) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pub")),
    );
    for path in [&secret_path, &public_path] {
        if path.exists() {
            return Err(file_error(path, "exists already; not overwriting a key"));
        }
    }
    crate::files::write_private(
        &secret_path,
        format!("{}\n", hex(&secret)).as_bytes(),
        crate::files::Lasting::Synced,
    )
    .map_err(|e| file_error(&secret_path, e))?;
    std::fs::write(&public_path, format!("ed25519 {}\n", hex(&public)))
        .map_err(|e| file_error(&public_path, e))?;
    Ok((secret_path, public_path, key_id(&public)))
}

/// A secret key read from a `.key` file.
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// Reads a `.key` file.
    pub fn read(path: &Path) -> Result<Self, SigningError> {
        let text = std::fs::read_to_string(path).map_err(|e| file_error(path, e))?;
        let bytes: [u8; 32] = unhex(&text)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| file_error(path, "not a secret key written by `eddy keys gen`"))?;
        Ok(SecretKey(SigningKey::from_bytes(&bytes)))
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature {
            key: self.0.verifying_key().to_bytes(),
            signature: self.0.sign(message).to_bytes(),
        }
    }

    /// The id of its public key.
    pub fn id(&self) -> String {
        key_id(&self.0.verifying_key().to_bytes())
    }
}

/// Reads a `.pub` file.
fn read_public_key(path: &Path) -> Result<VerifyingKey, SigningError> {
    let text = std::fs::read_to_string(path).map_err(|e| file_error(path, e))?;
    let bytes: [u8; 32] = text
        .trim()
        .strip_prefix("ed25519 ")
        .and_then(unhex)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| file_error(path, "not a public key written by `eddy keys gen`"))?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|e| file_error(path, format!("not a valid ed25519 key: {e}")))
}

/// The public keys a host accepts signatures from.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: Vec<VerifyingKey>,
}

impl TrustedKeys {
    /// Reads `.pub` files; on an error, says which of them failed.
    pub fn read(paths: &[PathBuf]) -> Result<Self, (usize, SigningError)> {
        let keys = paths
            .iter()
            .enumerate()
            .map(|(index, path)| read_public_key(path).map_err(|e| (index, e)))
            .collect::<Result<_, _>>()?;
        Ok(TrustedKeys { keys })
    }

    /// Checks a bundle's signature: present, by a trusted key, and over these bytes.
    pub fn verify(&self, bundle: &Bundle<'_>) -> Result<(), SigningError> {
        let signature = bundle.signature.ok_or(SigningError::Unsigned)?;
        let id = key_id(&signature.key);
        let key = self
            .keys
            .iter()
            .find(|k| k.to_bytes() == signature.key)
            .ok_or_else(|| SigningError::UntrustedKey(id.clone()))?;
        let sig = ed25519_dalek::Signature::from_bytes(&signature.signature);
        key.verify_strict(&bundle.signed_message(), &sig)
            .map_err(|_| SigningError::BadSignature(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::bundle::{BundleBody, encode};

    #[test]
    fn verifies_what_was_signed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let (secret, public, _) = generate(dir.path(), "site").unwrap();
        let (_, other_public, _) = generate(dir.path(), "other").unwrap();
        let key = SecretKey::read(&secret).unwrap();
        let trusted = TrustedKeys::read(&[public]).map_err(|(_, e)| e).unwrap();
        let body = BundleBody {
            manifest: "{}".into(),
            wasm: vec![1, 2, 3],
            artifacts: vec![],
        };
        let signed = encode(&body, |m| Some(key.sign(m)));
        assert_eq!(trusted.verify(&Bundle::parse(&signed).unwrap()), Ok(()));

        let mut tampered = signed.clone();
        tampered[14] ^= 1;
        assert!(matches!(
            trusted.verify(&Bundle::parse(&tampered).unwrap()),
            Err(SigningError::BadSignature(_))
        ));
        let unsigned = encode(&body, |_| None);
        assert_eq!(
            trusted.verify(&Bundle::parse(&unsigned).unwrap()),
            Err(SigningError::Unsigned)
        );
        let others = TrustedKeys::read(&[other_public])
            .map_err(|(_, e)| e)
            .unwrap();
        assert!(matches!(
            others.verify(&Bundle::parse(&signed).unwrap()),
            Err(SigningError::UntrustedKey(_))
        ));
        assert!(
            generate(dir.path(), "site").is_err(),
            "keys are never overwritten"
        );
    }

    proptest::proptest! {
        /// A signed bundle changed anywhere (a byte, cut short, a byte
        /// added) never verifies; whatever the bytes, reading them is a
        /// bundle or an error, never a panic.
        #[test]
        fn fuzz_a_changed_bundle_never_verifies(
            wasm in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            code in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..32),
            damage in crate::damage::damage(),
        ) {
            let key = SecretKey(SigningKey::from_bytes(&[7; 32]));
            let trusted = TrustedKeys { keys: vec![key.0.verifying_key()] };
            let body = BundleBody {
                manifest: r#"{"name":"p","version":"1.0.0"}"#.into(),
                wasm,
                artifacts: vec![crate::plugin::bundle::Artifact {
                    target: "x86_64-unknown-linux-gnu".into(),
                    engine: "e".into(),
                    code,
                }],
            };
            let signed = encode(&body, |m| Some(key.sign(m)));
            let bundle = Bundle::parse(&signed).unwrap();
            proptest::prop_assert_eq!(trusted.verify(&bundle), Ok(()));
            proptest::prop_assert_eq!(bundle.decode().unwrap(), body);

            let changed = crate::damage::apply(signed.clone(), &damage);
            if let Ok(bundle) = Bundle::parse(&changed) {
                if trusted.verify(&bundle).is_ok() {
                    proptest::prop_assert_eq!(&changed, &signed, "only the signed bytes verify");
                }
                let _ = bundle.decode();
            }
        }
    }
}
