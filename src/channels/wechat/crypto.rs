//! Safe mode (AES): AES-256-CBC with the key from the EncodingAESKey, IV = the key's first
//! 16 bytes, PKCS#7 padding to a multiple of 32 bytes; the plaintext is 16 random bytes, the
//! message length (4 bytes, big-endian), the message and the appid, which is checked.

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;

type Encryptor = cbc::Encryptor<aes::Aes256>;
type Decryptor = cbc::Decryptor<aes::Aes256>;

/// WeChat pads to 32 bytes, not to the AES block size.
const PAD_TO: usize = 32;

/// EncodingAESKeys are generated without regard to base64's unused trailing bits, so those
/// bits are not checked.
const KEY_ENGINE: GeneralPurpose =
    GeneralPurpose::new(&base64::alphabet::STANDARD, GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true).with_decode_padding_mode(DecodePaddingMode::Indifferent));

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("the EncodingAESKey must be 43 base64 characters")]
    Key,
    #[error("the encrypted message is not valid base64")]
    Base64,
    #[error("the encrypted message has a bad length or padding")]
    Layout,
    #[error("the encrypted message was sealed for another appid")]
    AppId,
}

pub struct Cipher {
    key: [u8; 32],
    appid: String,
}

impl Cipher {
    pub fn new(encoding_aes_key: &str, appid: &str) -> Result<Cipher, CryptoError> {
        if encoding_aes_key.len() != 43 {
            return Err(CryptoError::Key);
        }
        let bytes = KEY_ENGINE.decode(format!("{encoding_aes_key}=")).map_err(|_| CryptoError::Key)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::Key)?;
        Ok(Cipher { key, appid: appid.to_string() })
    }

    fn iv(&self) -> [u8; 16] {
        self.key[..16].try_into().expect("the key has 32 bytes")
    }

    /// Seals a message with fresh random bytes: base64 of the ciphertext.
    pub fn encrypt(&self, message: &[u8]) -> String {
        let mut random = [0u8; 16];
        getrandom::fill(&mut random).expect("the operating system has randomness");
        self.encrypt_with(random, message)
    }

    /// Seals a message with the given random prefix (fixed in tests for known vectors).
    pub fn encrypt_with(&self, random: [u8; 16], message: &[u8]) -> String {
        let mut plain = Vec::with_capacity(20 + message.len() + self.appid.len() + PAD_TO);
        plain.extend_from_slice(&random);
        plain.extend_from_slice(&(message.len() as u32).to_be_bytes());
        plain.extend_from_slice(message);
        plain.extend_from_slice(self.appid.as_bytes());
        let pad = PAD_TO - plain.len() % PAD_TO;
        plain.extend(std::iter::repeat_n(pad as u8, pad));
        let n = plain.len();
        let sealed = Encryptor::new(&self.key.into(), &self.iv().into())
            .encrypt_padded_mut::<NoPadding>(&mut plain, n)
            .expect("the plaintext is padded to whole blocks");
        STANDARD.encode(sealed)
    }

    /// Opens a sealed message and checks it was sealed for this app: the message.
    pub fn decrypt(&self, sealed: &str) -> Result<Vec<u8>, CryptoError> {
        let mut data = STANDARD.decode(sealed.trim()).map_err(|_| CryptoError::Base64)?;
        if data.is_empty() || data.len() % 16 != 0 {
            return Err(CryptoError::Layout);
        }
        let plain = Decryptor::new(&self.key.into(), &self.iv().into())
            .decrypt_padded_mut::<NoPadding>(&mut data)
            .map_err(|_| CryptoError::Layout)?;
        let pad = *plain.last().ok_or(CryptoError::Layout)? as usize;
        if pad == 0 || pad > PAD_TO || pad > plain.len() || !plain[plain.len() - pad..].iter().all(|&b| b as usize == pad) {
            return Err(CryptoError::Layout);
        }
        let plain = &plain[..plain.len() - pad];
        if plain.len() < 20 {
            return Err(CryptoError::Layout);
        }
        let len = u32::from_be_bytes(plain[16..20].try_into().expect("four bytes")) as usize;
        let rest = &plain[20..];
        if len > rest.len() {
            return Err(CryptoError::Layout);
        }
        let (message, appid) = rest.split_at(len);
        // The appid is not secret; a plain comparison is fine.
        if appid != self.appid.as_bytes() {
            return Err(CryptoError::AppId);
        }
        Ok(message.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

    #[test]
    fn round_trip_with_chinese_text() {
        let c = Cipher::new(KEY, "wx5823bf96d3bd56c7").unwrap();
        for msg in ["", "退货运费谁出？", &"很长的消息".repeat(200)] {
            let sealed = c.encrypt(msg.as_bytes());
            assert_eq!(c.decrypt(&sealed).unwrap(), msg.as_bytes());
            // Padding to 32 bytes: the ciphertext is a whole number of 32-byte units.
            assert_eq!(STANDARD.decode(&sealed).unwrap().len() % 32, 0);
        }
        // Fresh random bytes each time.
        assert_ne!(c.encrypt(b"x"), c.encrypt(b"x"));
    }

    #[test]
    fn key_is_base64_of_the_43_characters_plus_padding() {
        let c = Cipher::new(KEY, "a").unwrap();
        // Python's base64.b64decode(KEY + "=") gives these bytes; a strict decoder refuses
        // the key for its unused trailing bits, which WeChat's keys do not keep zero.
        assert_eq!(hex::encode(c.key), "69b71d79f8218a39259a7a29aabb2dbafc31cb3d35db7e39ebbf3d0010831051");
        assert!(STANDARD.decode(format!("{KEY}=")).is_err());
        assert_eq!(Cipher::new("short", "a").err(), Some(CryptoError::Key));
        assert_eq!(Cipher::new(&"!".repeat(43), "a").err(), Some(CryptoError::Key));
    }

    /// A vector computed independently with Python's `cryptography` package: key =
    /// b64decode(KEY + "="), AES-CBC with IV key[:16] over b"0123456789abcdef" +
    /// pack(">I", 6) + "你好".encode() + b"wxappid", PKCS#7-padded to 32 bytes.
    #[test]
    fn known_vector() {
        let c = Cipher::new(KEY, "wxappid").unwrap();
        let sealed = c.encrypt_with(*b"0123456789abcdef", "你好".as_bytes());
        assert_eq!(sealed, KNOWN);
        assert_eq!(c.decrypt(KNOWN).unwrap(), "你好".as_bytes());
    }

    const KNOWN: &str = "Q3stYC6hdFzMh9T8HCvyDEQp/TvGW1AbqzEyYTH3OkxaPcL9bVhrE65W0bVn/fvJTpfX+6xccdVeEhPU/SaRBw==";

    #[test]
    fn wrong_appid_and_tampering_are_refused() {
        let c = Cipher::new(KEY, "wxone").unwrap();
        let other = Cipher::new(KEY, "wxtwo").unwrap();
        let sealed = c.encrypt("你好".as_bytes());
        assert_eq!(other.decrypt(&sealed), Err(CryptoError::AppId));
        assert_eq!(c.decrypt("not base64!"), Err(CryptoError::Base64));
        assert_eq!(c.decrypt("AAAA"), Err(CryptoError::Layout));
        let mut bytes = STANDARD.decode(&sealed).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(c.decrypt(&STANDARD.encode(&bytes)).is_err());
    }
}
