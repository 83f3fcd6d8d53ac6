//! Sealing secrets at rest: AES-256-GCM (ring) under a 32-byte master key, a fresh random 96-bit
//! nonce for every seal, and the owning record's id as associated data (a sealed value moved to
//! another record does not open).
//!
//! A sealed value is `version (1 byte, = 1) | nonce (12) | ciphertext | tag (16)`.

use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

const VERSION: u8 = 1;
const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Deliberately without the text: it may be a key with a typo.
    #[error("a master key is 32 bytes written in base64 or hex")]
    Malformed,
    #[error("the system random number generator failed")]
    Random,
    #[error("sealing failed")]
    Seal,
}

/// The master key. Its bytes never leave this type except as [`MasterKey::to_base64`] (to
/// write a key file) and never appear in `Debug`.
pub struct MasterKey {
    bytes: [u8; KEY_LEN],
    key: LessSafeKey,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl Clone for MasterKey {
    fn clone(&self) -> Self {
        Self::from_bytes(self.bytes)
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &bytes).expect("AES-256-GCM takes a 32-byte key"),
        );
        Self { bytes, key }
    }

    /// A new random key.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = [0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| KeyError::Random)?;
        Ok(Self::from_bytes(bytes))
    }

    /// Reads 32 bytes written as hex (64 digits) or base64 (standard or URL-safe, padded or
    /// not); surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        let decoded = if text.len() == 2 * KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).ok()
        } else {
            use base64::engine::general_purpose::{
                STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
            };
            [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
                .iter()
                .find_map(|e| e.decode(text).ok())
        };
        let bytes: [u8; KEY_LEN] = decoded
            .and_then(|d| d.try_into().ok())
            .ok_or(KeyError::Malformed)?;
        Ok(Self::from_bytes(bytes))
    }

    /// The key in standard base64, as a key file holds it.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.bytes)
    }

    /// Whether both are the same key (an operator's check, not on any request path).
    pub fn same_as(&self, other: &MasterKey) -> bool {
        self.bytes == other.bytes
    }

    /// Seals `plain`, bound to `aad`.
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| KeyError::Random)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plain.len() + AES_256_GCM.tag_len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut body,
            )
            .map_err(|_| KeyError::Seal)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Opens what [`MasterKey::seal`] sealed with this key and the same `aad`; `None` for
    /// anything else (another key, another record, altered bytes).
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let (&version, rest) = sealed.split_first()?;
        if version != VERSION || rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut body)
            .ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_refusals() {
        let k = MasterKey::generate().unwrap();
        let a = k.seal(b"id-1", b"whsec_secret").unwrap();
        let b = k.seal(b"id-1", b"whsec_secret").unwrap();
        assert_ne!(a, b, "a fresh nonce for every seal");
        assert!(!a.windows(12).any(|w| w == b"whsec_secret"));
        assert_eq!(k.open(b"id-1", &a).unwrap(), b"whsec_secret");
        assert_eq!(k.open(b"id-2", &a), None, "bound to its record");
        let other = MasterKey::generate().unwrap();
        assert_eq!(other.open(b"id-1", &a), None, "another key");
        let mut bent = a.clone();
        *bent.last_mut().unwrap() ^= 1;
        assert_eq!(k.open(b"id-1", &bent), None, "altered");
        assert_eq!(k.open(b"id-1", &a[..5]), None, "truncated");
    }

    #[test]
    fn parses_hex_and_base64_and_nothing_else() {
        let k = MasterKey::generate().unwrap();
        let b64 = k.to_base64();
        assert!(MasterKey::parse(&format!(" {b64}\n")).unwrap().same_as(&k));
        assert!(MasterKey::parse(b64.trim_end_matches('='))
            .unwrap()
            .same_as(&k));
        assert!(MasterKey::parse(&hex::encode(k.bytes)).unwrap().same_as(&k));
        assert!(MasterKey::parse(&hex::encode(k.bytes).to_uppercase())
            .unwrap()
            .same_as(&k));
        for bad in ["", "short", &hex::encode([1u8; 31]), &"A".repeat(60)] {
            assert!(MasterKey::parse(bad).is_err(), "{bad:?}");
        }
        assert!(!format!("{k:?}").contains(&b64));
        assert!(!MasterKey::generate().unwrap().same_as(&k));
    }
}
