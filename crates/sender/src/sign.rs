//! Standard Webhooks signatures: `v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>`,
//! where the key is the base64-decoded part of a `whsec_` secret; and the hex HMAC-SHA256 of the
//! other schemes, whose key is the secret text itself (as the reference documents' snippets use
//! it); secret checks and generation in every form.
//!
//! Signing is on the hot path: it feeds the MAC incrementally (no concatenated copy of the body)
//! and allocates only the returned header value.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hookd_types::format::SecretForm;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// Prefix of every secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Accepted decoded key lengths, in bytes.
pub const KEY_LEN: std::ops::RangeInclusive<usize> = 24..=64;
/// Length of the keys [`generate_secret`] makes.
const GENERATED_KEY_LEN: usize = 32;
/// `"v1,"` + base64 of a 32-byte tag (44 chars).
const SIGNATURE_LEN: usize = 3 + 44;

/// An HMAC-SHA256 key made from a `whsec_` secret. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct SigningKey(hmac::Key);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("secret must start with \"whsec_\"")]
    MissingPrefix,
    #[error("secret is not valid base64 after \"whsec_\": {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("secret key is {0} bytes; it must be 24 to 64 bytes")]
    Length(usize),
    #[error("secret must be 16 to 256 visible ASCII characters (no spaces)")]
    Plain,
}

/// Accepted lengths of secrets used as text.
pub const PLAIN_SECRET_LEN: std::ops::RangeInclusive<usize> = 16..=256;

/// A secret whose text is the HMAC key: visible ASCII only, so it survives environment
/// variables, config files and copy-paste unchanged.
pub fn check_plain_secret(secret: &str) -> Result<(), SecretError> {
    let ok =
        PLAIN_SECRET_LEN.contains(&secret.len()) && secret.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(SecretError::Plain)
    }
}

/// Lower-case hex of HMAC-SHA256 keyed with the bytes of `secret`, over `parts` in order.
pub fn hex_hmac(secret: &str, parts: &[&[u8]]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    for p in parts {
        ctx.update(p);
    }
    hex::encode(ctx.sign().as_ref())
}

/// A new secret in `form`, from 32 bytes of the system CSPRNG.
pub fn generate_secret_in(form: SecretForm) -> String {
    match form {
        SecretForm::WhsecBase64 => generate_secret(),
        SecretForm::Hex64 => hex::encode(random_key()),
        SecretForm::WhsecHex => format!("{SECRET_PREFIX}{}", hex::encode(random_key())),
    }
}

fn random_key() -> [u8; GENERATED_KEY_LEN] {
    let mut key = [0u8; GENERATED_KEY_LEN];
    SystemRandom::new()
        .fill(&mut key)
        .expect("the system random number generator failed");
    key
}

impl SigningKey {
    /// From a `whsec_<base64>` secret (standard alphabet, canonical padding). The key is the
    /// decoded bytes, which must be 24..=64 bytes long.
    pub fn from_secret(secret: &str) -> Result<Self, SecretError> {
        let encoded = secret
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::MissingPrefix)?;
        let key = STANDARD.decode(encoded)?;
        if !KEY_LEN.contains(&key.len()) {
            return Err(SecretError::Length(key.len()));
        }
        Ok(Self(hmac::Key::new(hmac::HMAC_SHA256, &key)))
    }
}

/// `v1,<base64(HMAC-SHA256(key, "{msg_id}.{timestamp}.{body}"))>`
pub fn sign(key: &SigningKey, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut ts = [0u8; 20];
    let mut ctx = hmac::Context::with_key(&key.0);
    ctx.update(msg_id.as_bytes());
    ctx.update(b".");
    ctx.update(format_i64(timestamp, &mut ts));
    ctx.update(b".");
    ctx.update(body);
    let tag = ctx.sign();

    let mut out = String::with_capacity(SIGNATURE_LEN);
    out.push_str("v1,");
    STANDARD.encode_string(tag.as_ref(), &mut out);
    out
}

/// A new secret: `whsec_` + standard base64 of 32 random bytes from the system CSPRNG.
pub fn generate_secret() -> String {
    let key = random_key();
    let mut out = String::with_capacity(SECRET_PREFIX.len() + 44);
    out.push_str(SECRET_PREFIX);
    STANDARD.encode_string(key, &mut out);
    out
}

/// Decimal text of `n` in `buf` (an i64 needs at most 20 bytes with its sign), without allocating.
fn format_i64(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    // The vector of the public standardwebhooks libraries; cross-checked with the Python package
    // (`standardwebhooks.webhooks.Webhook(secret).sign(...)`).
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const PAYLOAD: &[u8] = br#"{"test": 2432232314}"#;

    #[test]
    fn standard_webhooks_vector() {
        let key = SigningKey::from_secret(SECRET).unwrap();
        assert_eq!(
            sign(&key, MSG_ID, TS, PAYLOAD),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn padded_32_byte_key_and_utf8_body() {
        // Computed with the Python standardwebhooks package.
        let key =
            SigningKey::from_secret("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
        assert_eq!(
            sign(
                &key,
                "evt_01HZY",
                1700000000,
                "{\"id\":\"evt_01HZY\",\"data\":{\"x\":\"é\"}}".as_bytes()
            ),
            "v1,Y4atqYC9MRCx1+nt/9CwmqMWuIigkBNDVDd61QdoHME="
        );
    }

    #[test]
    fn signature_depends_on_every_part() {
        let key = SigningKey::from_secret(SECRET).unwrap();
        let base = sign(&key, MSG_ID, TS, PAYLOAD);
        assert_eq!(base.len(), SIGNATURE_LEN);
        assert_ne!(base, sign(&key, "msg_other", TS, PAYLOAD));
        assert_ne!(base, sign(&key, MSG_ID, TS + 1, PAYLOAD));
        assert_ne!(base, sign(&key, MSG_ID, TS, b"{}"));
        let other = SigningKey::from_secret(&generate_secret()).unwrap();
        assert_ne!(base, sign(&other, MSG_ID, TS, PAYLOAD));
    }

    #[test]
    fn timestamp_formatting() {
        let mut buf = [0u8; 20];
        for n in [0, 7, -7, 10, 1614265330, i64::MAX, i64::MIN] {
            assert_eq!(format_i64(n, &mut buf), n.to_string().as_bytes());
        }
    }

    #[test]
    fn generated_secrets() {
        let a = generate_secret();
        let b = generate_secret();
        assert_ne!(a, b);
        assert!(a.starts_with("whsec_"));
        assert_eq!(a.len(), "whsec_".len() + 44);
        assert_eq!(
            STANDARD.decode(&a["whsec_".len()..]).unwrap().len(),
            GENERATED_KEY_LEN
        );
        SigningKey::from_secret(&a).unwrap();
    }

    #[test]
    fn bad_secrets() {
        assert_eq!(
            SigningKey::from_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_err(),
            SecretError::MissingPrefix
        );
        assert_eq!(
            SigningKey::from_secret("WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_err(),
            SecretError::MissingPrefix
        );
        assert!(matches!(
            SigningKey::from_secret("whsec_not base64!").unwrap_err(),
            SecretError::Base64(_)
        ));
        // Unpadded input whose length needs padding.
        let unpadded = STANDARD.encode([7u8; 25]);
        let unpadded = unpadded.trim_end_matches('=');
        assert!(matches!(
            SigningKey::from_secret(&format!("whsec_{unpadded}")).unwrap_err(),
            SecretError::Base64(_)
        ));
        let short = format!("whsec_{}", STANDARD.encode([1u8; 23]));
        assert_eq!(
            SigningKey::from_secret(&short).unwrap_err(),
            SecretError::Length(23)
        );
        let long = format!("whsec_{}", STANDARD.encode([1u8; 65]));
        assert_eq!(
            SigningKey::from_secret(&long).unwrap_err(),
            SecretError::Length(65)
        );
        assert_eq!(
            SigningKey::from_secret("whsec_").unwrap_err(),
            SecretError::Length(0)
        );
        for n in [24, 64] {
            SigningKey::from_secret(&format!("whsec_{}", STANDARD.encode(vec![1u8; n]))).unwrap();
        }
    }

    #[test]
    fn hex_hmac_matches_a_known_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            hex_hmac("Jefe", &[b"what do ya ", b"want for nothing?"]),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn secret_forms() {
        let hex64 = generate_secret_in(SecretForm::Hex64);
        assert_eq!(hex64.len(), 64);
        assert!(hex64
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        let whsec_hex = generate_secret_in(SecretForm::WhsecHex);
        assert!(whsec_hex.starts_with("whsec_") && whsec_hex.len() == 70);
        SigningKey::from_secret(&generate_secret_in(SecretForm::WhsecBase64)).unwrap();
        for ok in [
            hex64.as_str(),
            &whsec_hex,
            "your-webhook-secret",
            &"x".repeat(256),
        ] {
            check_plain_secret(ok).unwrap();
        }
        for bad in [
            "short",
            "has a space in it!!",
            "tab\there-0123456789",
            "é-0123456789abcdef",
        ] {
            assert_eq!(check_plain_secret(bad), Err(SecretError::Plain), "{bad:?}");
        }
        assert_eq!(
            check_plain_secret(&"x".repeat(257)),
            Err(SecretError::Plain)
        );
    }

    #[test]
    fn debug_hides_the_key() {
        let key = SigningKey::from_secret(SECRET).unwrap();
        assert_eq!(format!("{key:?}"), "SigningKey(..)");
    }
}
