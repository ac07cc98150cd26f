//! The secret key of the `hash` method.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// SHA-256's block size: HMAC pads or hashes its key to this many bytes.
const BLOCK: usize = 64;

/// The HMAC key (from config or env, never from policy files); Debug must not print it.
#[derive(Clone)]
pub struct HashKey {
    /// The keyed state (inner and outer pads absorbed), cloned per value so
    /// that each MAC costs only the message's blocks.
    keyed: HmacSha256,
}

impl HashKey {
    /// A key made of `bytes` (any length, as HMAC allows).
    pub fn new(bytes: &[u8]) -> Self {
        // Derive the block-sized key as HMAC itself would (RFC 2104), so the
        // infallible constructor can be used.
        let mut block = hmac::digest::Key::<HmacSha256>::default();
        if bytes.len() > BLOCK {
            let digest = Sha256::digest(bytes);
            block[..digest.len()].copy_from_slice(&digest);
        } else {
            block[..bytes.len()].copy_from_slice(bytes);
        }
        HashKey {
            keyed: HmacSha256::new(&block),
        }
    }

    /// HMAC-SHA-256 of `data` under this key.
    pub(crate) fn mac(&self, data: &[u8]) -> [u8; 32] {
        let mut m = self.keyed.clone();
        m.update(data);
        m.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for HashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn rfc4231_vectors() {
        // Test case 2: a short key.
        assert_eq!(
            hex(&HashKey::new(b"Jefe").mac(b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a 131-byte key, longer than the block, is hashed first.
        assert_eq!(
            hex(&HashKey::new(&[0xaa; 131])
                .mac(b"Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn debug_hides_the_key() {
        let k = HashKey::new(b"s3cret-key");
        let shown = format!("{k:?}");
        assert_eq!(shown, "HashKey(..)");
    }
}
