//! Signed checkpoints: a chained line whose Ed25519 signature covers every
//! byte of the line before the signature itself, so its `seq` and `prev`
//! (the hash of the whole chain up to it), time and reason. The signature
//! is the last field, so the signed bytes are simply a prefix of the line:
//!
//! `{"seq":N,"prev":"..",...,"pgwarden":{"checkpoint":{..,"signature":"<128 hex>"}}}`

use super::chain::{parse_hex, push_hex, Chain};
use super::json::{Timestamp, ECS_VERSION};
use super::keys::key_id;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use std::time::SystemTime;

/// Signed bytes are this, then the line up to the signature: a checkpoint
/// signature can never be replayed as a signature over anything else.
const DOMAIN: &[u8] = b"pgwarden audit checkpoint v1\n";

/// How a checkpoint line ends after its signature's hex digits.
const TAIL: &[u8] = b"\"}}}";

/// What comes right before the signature's hex digits.
const SIGNATURE_KEY: &[u8] = b"\"signature\":\"";

/// Room kept in a file for the checkpoint written when it is rotated; a
/// checkpoint line is about 480 bytes (a test pins the bound).
pub(crate) const CHECKPOINT_MAX: usize = 640;

/// Why a checkpoint was written (`event.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// `audit.sign_interval` or `sign_interval_records` elapsed.
    Interval,
    /// The last line of a file that is being rotated.
    Rotation,
    /// The last line before a clean shutdown.
    Seal,
}

impl Reason {
    /// The `event.reason` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Interval => "interval",
            Reason::Rotation => "rotation",
            Reason::Seal => "seal",
        }
    }

    /// The reason named by an `event.reason` value.
    pub fn parse(s: &str) -> Option<Self> {
        [Reason::Interval, Reason::Rotation, Reason::Seal]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// Writes signed checkpoints into the chain.
pub(crate) struct Signer {
    key: SigningKey,
    key_id: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key.
        f.debug_struct("Signer")
            .field("key_id", &self.key_id)
            .finish()
    }
}

impl Signer {
    /// A signer with `key`.
    pub(crate) fn new(key: SigningKey) -> Self {
        let key_id = key_id(&key.verifying_key());
        Self { key, key_id }
    }

    /// Appends a checkpoint as the next line of `chain`: `records` lines
    /// were written since the previous checkpoint.
    pub(crate) fn push_checkpoint(
        &self,
        chain: &mut Chain,
        out: &mut Vec<u8>,
        reason: Reason,
        records: u64,
        now: SystemTime,
    ) {
        let start = out.len();
        chain.begin(out);
        out.extend_from_slice(b",\"@timestamp\":");
        // Writing into a Vec cannot fail, and a timestamp always serializes.
        let _ = serde_json::to_writer(&mut *out, &Timestamp(now));
        out.extend_from_slice(b",\"ecs\":{\"version\":\"");
        out.extend_from_slice(ECS_VERSION.as_bytes());
        out.extend_from_slice(
            b"\"},\"event\":{\"kind\":\"event\",\"category\":[\"database\"],\"type\":[\"info\"],\
              \"action\":\"checkpoint\",\"reason\":\"",
        );
        out.extend_from_slice(reason.as_str().as_bytes());
        out.extend_from_slice(
            b"\",\"outcome\":\"success\",\"dataset\":\"pgwarden.audit\",\"module\":\"pgwarden\"},\
              \"pgwarden\":{\"checkpoint\":{\"records\":",
        );
        out.extend_from_slice(records.to_string().as_bytes());
        out.extend_from_slice(b",\"key_id\":\"");
        out.extend_from_slice(self.key_id.as_bytes());
        out.extend_from_slice(b"\",");
        out.extend_from_slice(SIGNATURE_KEY);
        let signature = self
            .key
            .sign(&signed_message(out.get(start..).unwrap_or_default()));
        push_hex(out, &signature.to_bytes());
        out.extend_from_slice(TAIL);
        chain.finish(out, start);
    }
}

/// A checkpoint line split into the bytes its signature covers and the
/// signature; `None` when the line does not end like a checkpoint.
pub(crate) fn split_signed(line: &[u8]) -> Option<(&[u8], Signature)> {
    let body = line.strip_suffix(TAIL)?;
    let hex_start = body.len().checked_sub(128)?;
    let (signed, hex) = body.split_at(hex_start);
    if !signed.ends_with(SIGNATURE_KEY) {
        return None;
    }
    Some((signed, Signature::from_bytes(&parse_hex::<64>(hex)?)))
}

/// What a checkpoint's signature is over: a domain string, then `signed`,
/// the line's bytes up to (not including) the signature's hex digits.
pub fn signed_message(signed: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(DOMAIN.len() + signed.len());
    message.extend_from_slice(DOMAIN);
    message.extend_from_slice(signed);
    message
}

/// Whether `signature` is `key`'s over a checkpoint's signed bytes.
pub(crate) fn signature_ok(key: &VerifyingKey, signed: &[u8], signature: &Signature) -> bool {
    key.verify_strict(&signed_message(signed), signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn signer(seed: u8) -> Signer {
        Signer::new(SigningKey::from_bytes(&[seed; 32]))
    }

    #[test]
    fn checkpoint_is_a_signed_chained_record() {
        let s = signer(7);
        let mut chain = Chain::new();
        let mut out = Vec::new();
        chain.push_object(&mut out, br#"{"a":1}"#);
        let start = out.len();
        s.push_checkpoint(
            &mut chain,
            &mut out,
            Reason::Seal,
            1,
            SystemTime::UNIX_EPOCH,
        );
        let line = &out[start..out.len() - 1];
        assert!(line.len() < CHECKPOINT_MAX, "{} bytes", line.len());
        let v: Value = serde_json::from_slice(line).unwrap();
        assert_eq!(v["seq"], 2);
        assert_eq!(v["@timestamp"], "1970-01-01T00:00:00.000000Z");
        assert_eq!(v["event"]["action"], "checkpoint");
        assert_eq!(v["event"]["reason"], "seal");
        assert_eq!(v["pgwarden"]["checkpoint"]["records"], 1);
        assert_eq!(v["pgwarden"]["checkpoint"]["key_id"], s.key_id.as_str());
        let (signed, sig) = split_signed(line).unwrap();
        let key = s.key.verifying_key();
        assert!(signature_ok(&key, signed, &sig));
        assert!(!signature_ok(&signer(8).key.verifying_key(), signed, &sig));
        // Any change to the signed bytes (here: the seq) breaks it.
        let mut changed = signed.to_vec();
        changed[7] = b'3';
        assert!(!signature_ok(&key, &changed, &sig));
    }

    #[test]
    fn records_are_not_checkpoints() {
        assert!(split_signed(br#"{"seq":1,"prev":"00","a":1}"#).is_none());
        let fake = format!(r#"{{"signature":"{}"}}}}}}"#, "zz".repeat(64));
        assert!(split_signed(fake.as_bytes()).is_none());
        assert_eq!(Reason::parse("rotation"), Some(Reason::Rotation));
        assert_eq!(Reason::parse("x"), None);
    }
}
