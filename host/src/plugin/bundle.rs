//! Plugin bundles: the `.wasm`, its manifest, optionally precompiled
//! artifacts for some targets, and optionally an ed25519 signature over all
//! of it.
//!
//! Layout: the magic `EDDYPKG1`, the body's length (u32, little endian), the
//! body (postcard: manifest JSON, wasm bytes, artifacts), then either nothing
//! or the signature trailer: `SIG1`, the signer's 32-byte public key and the
//! 64-byte signature over `eddy-bundle-v1\0` followed by the body's bytes
//! exactly as stored. Nothing in the body is read before the signature over
//! it verifies, when the host requires one.

use serde::{Deserialize, Serialize};

/// The first bytes of every bundle.
pub const MAGIC: &[u8; 8] = b"EDDYPKG1";

/// What a signature covers: this, then the body.
const CONTEXT: &[u8] = b"eddy-bundle-v1\0";

/// The first bytes of the signature trailer.
const SIGNATURE_TAG: &[u8; 4] = b"SIG1";

/// What a bundle carries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BundleBody {
    /// The plugin's manifest, as in its custom section.
    pub manifest: String,
    /// The WebAssembly module.
    #[serde(with = "serde_bytes")]
    pub wasm: Vec<u8>,
    /// Machine code compiled ahead of time, per target.
    pub artifacts: Vec<Artifact>,
}

/// A bundle's body read in place: what [`BundleBody`] holds, borrowed from
/// the bundle's bytes, so that loading a plugin copies its code once (into
/// the engine), not three times.
#[derive(Debug, Deserialize)]
pub struct BundleView<'a> {
    /// The manifest, as JSON.
    pub manifest: &'a str,
    /// The WebAssembly module.
    pub wasm: &'a [u8],
    /// Machine code compiled ahead of time, per target.
    #[serde(borrow)]
    pub artifacts: Vec<ArtifactView<'a>>,
}

/// An [`Artifact`] read in place.
#[derive(Debug, Deserialize)]
pub struct ArtifactView<'a> {
    /// The target triple.
    pub target: &'a str,
    /// The fingerprint of the engine settings it was compiled for.
    pub engine: &'a str,
    /// Wasmtime's serialized module.
    pub code: &'a [u8],
}

impl From<BundleView<'_>> for BundleBody {
    fn from(view: BundleView<'_>) -> Self {
        BundleBody {
            manifest: view.manifest.to_owned(),
            wasm: view.wasm.to_vec(),
            artifacts: view
                .artifacts
                .into_iter()
                .map(|a| Artifact {
                    target: a.target.to_owned(),
                    engine: a.engine.to_owned(),
                    code: a.code.to_vec(),
                })
                .collect(),
        }
    }
}

/// The plugin compiled ahead of time for one target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Artifact {
    /// The target triple, e.g. `aarch64-unknown-linux-gnu`.
    pub target: String,
    /// The fingerprint of the engine settings it was compiled for
    /// ([`super::PluginEngine::fingerprint`]); a host loads it only when its
    /// own matches.
    pub engine: String,
    /// Wasmtime's serialized module.
    #[serde(with = "serde_bytes")]
    pub code: Vec<u8>,
}

/// A signature: who signed, and the signature bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    /// The signer's public key.
    pub key: [u8; 32],
    /// The ed25519 signature.
    pub signature: [u8; 64],
}

/// A bundle as read from a file: the body's bytes as stored, and the signature.
pub struct Bundle<'a> {
    /// The body, not yet decoded.
    pub body: &'a [u8],
    /// The signature, if it is signed.
    pub signature: Option<Signature>,
}

/// Why bytes are not a readable bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// Too short, or the lengths do not add up.
    #[error("a truncated or malformed bundle: {0}")]
    Malformed(&'static str),
    /// The body does not decode.
    #[error("the bundle's contents do not decode: {0}")]
    Body(String),
}

/// Whether `bytes` are a bundle (rather than a bare `.wasm`).
pub fn is_bundle(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

impl<'a> Bundle<'a> {
    /// Splits a bundle file into its body and signature, without decoding.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, BundleError> {
        let rest = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or(BundleError::Malformed("no EDDYPKG1 header"))?;
        let (len, rest) = rest
            .split_first_chunk::<4>()
            .ok_or(BundleError::Malformed("no body length"))?;
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err(BundleError::Malformed("the body is cut short"));
        }
        let (body, trailer) = rest.split_at(len);
        let signature = match trailer.len() {
            0 => None,
            100 if trailer.starts_with(SIGNATURE_TAG) => {
                let mut key = [0; 32];
                let mut signature = [0; 64];
                key.copy_from_slice(&trailer[4..36]);
                signature.copy_from_slice(&trailer[36..100]);
                Some(Signature { key, signature })
            }
            _ => return Err(BundleError::Malformed("unexpected bytes after the body")),
        };
        Ok(Bundle { body, signature })
    }

    /// Decodes the body. Call only after the signature has been checked, where one is required.
    pub fn decode(&self) -> Result<BundleBody, BundleError> {
        self.view().map(BundleBody::from)
    }

    /// Reads the body in place, as [`Bundle::decode`] does without copying.
    /// Call only after the signature has been checked, where one is required.
    pub fn view(&self) -> Result<BundleView<'a>, BundleError> {
        postcard::from_bytes(self.body).map_err(|e| BundleError::Body(e.to_string()))
    }

    /// What a signature over this bundle signs.
    pub fn signed_message(&self) -> Vec<u8> {
        signed_message(self.body)
    }
}

/// What a signature over `body` signs.
pub fn signed_message(body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(CONTEXT.len() + body.len());
    message.extend_from_slice(CONTEXT);
    message.extend_from_slice(body);
    message
}

/// Encodes a bundle: the body, and the signature if there is one.
pub fn encode(body: &BundleBody, sign: impl FnOnce(&[u8]) -> Option<Signature>) -> Vec<u8> {
    let body = postcard::to_allocvec(body).expect("a bundle body always encodes");
    let mut out = Vec::with_capacity(body.len() + 112);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    if let Some(signature) = sign(&signed_message(&body)) {
        out.extend_from_slice(SIGNATURE_TAG);
        out.extend_from_slice(&signature.key);
        out.extend_from_slice(&signature.signature);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> BundleBody {
        BundleBody {
            manifest: r#"{"name":"p"}"#.into(),
            wasm: vec![0, 97, 115, 109, 1, 0, 0, 0],
            artifacts: vec![Artifact {
                target: "x86_64-unknown-linux-gnu".into(),
                engine: "abc".into(),
                code: vec![1, 2, 3],
            }],
        }
    }

    /// Bundles written while byte strings were encoded as sequences of
    /// bytes (the layout serde gives a plain `Vec<u8>`) read back the same:
    /// postcard writes both as a length and the bytes.
    #[test]
    fn bundles_with_bytes_as_sequences_read_back() {
        #[derive(Serialize)]
        struct SequenceArtifact {
            target: String,
            engine: String,
            code: Vec<u8>,
        }
        #[derive(Serialize)]
        struct SequenceBody {
            manifest: String,
            wasm: Vec<u8>,
            artifacts: Vec<SequenceArtifact>,
        }
        let code: Vec<u8> = (0..=255).cycle().take(1000).collect();
        let older = postcard::to_allocvec(&SequenceBody {
            manifest: r#"{"name":"p"}"#.into(),
            wasm: vec![0, 97, 115, 109, 1, 0, 0, 0],
            artifacts: vec![SequenceArtifact {
                target: "x86_64-unknown-linux-gnu".into(),
                engine: "abc".into(),
                code: code.clone(),
            }],
        })
        .unwrap();
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&(older.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&older);
        let mut expected = body();
        expected.artifacts[0].code = code;
        assert_eq!(Bundle::parse(&bytes).unwrap().decode().unwrap(), expected);
        assert_eq!(bytes, encode(&expected, |_| None));
        assert_views(&bytes, &expected);
    }

    /// The in-place view of `bytes` holds what `expected` holds.
    fn assert_views(bytes: &[u8], expected: &BundleBody) {
        let bundle = Bundle::parse(bytes).unwrap();
        let view = bundle.view().unwrap();
        assert_eq!(view.manifest, expected.manifest);
        assert_eq!(view.wasm, &expected.wasm[..]);
        let artifacts: Vec<(&str, &str, &[u8])> = view
            .artifacts
            .iter()
            .map(|a| (a.target, a.engine, a.code))
            .collect();
        let wanted: Vec<(&str, &str, &[u8])> = expected
            .artifacts
            .iter()
            .map(|a| (&a.target[..], &a.engine[..], &a.code[..]))
            .collect();
        assert_eq!(artifacts, wanted);
    }

    #[test]
    fn a_view_reads_what_decoding_reads_and_refuses_what_it_refuses() {
        let mut two = body();
        two.artifacts.push(Artifact {
            target: "aarch64-unknown-linux-gnu".into(),
            engine: "def".into(),
            code: (0..=255).cycle().take(5000).collect(),
        });
        for expected in [body(), two] {
            let bytes = encode(&expected, |_| None);
            assert_views(&bytes, &expected);
            // A body cut inside an artifact's code is refused by both.
            let mut cut = bytes[..bytes.len() - 3].to_vec();
            let len = (cut.len() - MAGIC.len() - 4) as u32;
            cut[MAGIC.len()..MAGIC.len() + 4].copy_from_slice(&len.to_le_bytes());
            let bundle = Bundle::parse(&cut).unwrap();
            assert!(bundle.decode().is_err());
            assert!(bundle.view().is_err());
        }
    }

    #[test]
    fn round_trips_signed_and_unsigned() {
        let unsigned = encode(&body(), |_| None);
        let parsed = Bundle::parse(&unsigned).unwrap();
        assert!(parsed.signature.is_none());
        assert_eq!(parsed.decode().unwrap(), body());

        let sig = Signature {
            key: [7; 32],
            signature: [9; 64],
        };
        let signed = encode(&body(), |_| Some(sig));
        let parsed = Bundle::parse(&signed).unwrap();
        assert_eq!(parsed.signature, Some(sig));
        assert_eq!(parsed.decode().unwrap(), body());
    }

    #[test]
    fn cut_or_padded_bundles_are_refused() {
        let bytes = encode(&body(), |_| None);
        assert!(Bundle::parse(&bytes[..bytes.len() - 1]).is_err());
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(Bundle::parse(&padded).is_err());
        assert!(Bundle::parse(b"EDDYPKG1").is_err());
    }
}
