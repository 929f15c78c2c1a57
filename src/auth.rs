//! Secrets: unguessable tokens stored only as hashes, agent passwords (PBKDF2), and the
//! signed identity a website passes for a logged-in customer (HMAC-SHA256), all compared in
//! constant time.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// PBKDF2 rounds for agent passwords (OWASP's 2023 figure for PBKDF2-HMAC-SHA256 is 600 000;
/// logins are rare, so the cost is paid gladly).
pub const PASSWORD_ROUNDS: u32 = 600_000;

/// A fresh random token: 256 bits, hex.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    hex::encode(bytes)
}

/// A fresh random id: 128 bits, hex.
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    hex::encode(bytes)
}

/// What is stored of a token: its SHA-256, hex.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time equality of two strings (lengths may leak; contents do not).
pub fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Hashes a password as `pbkdf2-sha256$ROUNDS$SALT$HASH`.
pub fn hash_password(password: &str, rounds: u32) -> String {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the operating system's random source failed");
    hash_with(password, &salt, rounds)
}

fn hash_with(password: &str, salt: &[u8], rounds: u32) -> String {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, rounds, &mut out);
    format!("pbkdf2-sha256${rounds}${}${}", hex::encode(salt), hex::encode(out))
}

/// Checks a password against a stored hash.
pub fn verify_password(password: &str, stored: &str) -> bool {
    let parts: Vec<&str> = stored.split('$').collect();
    let [scheme, rounds, salt, _] = parts.as_slice() else { return false };
    let (Ok(rounds), Ok(salt)) = (rounds.parse::<u32>(), hex::decode(salt)) else { return false };
    *scheme == "pbkdf2-sha256" && rounds > 0 && same(&hash_with(password, &salt, rounds), stored)
}

/// Common passwords, one a line (`#` starts a comment), shipped with the binary.
const COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

/// Why a new password is too easy to guess, if it is: one of the common passwords, the
/// account's own id or name, one character repeated, or a run of consecutive digits or
/// letters.
pub fn weak_password(password: &str, id: &str, name: &str) -> Option<&'static str> {
    let p = password.trim().to_lowercase();
    if COMMON_PASSWORDS.lines().map(str::trim).any(|l| !l.is_empty() && !l.starts_with('#') && l == p) {
        return Some("it is one of the most common passwords");
    }
    if p == id.trim().to_lowercase() || p == name.trim().to_lowercase() {
        return Some("it is the account's id or name");
    }
    let chars: Vec<char> = p.chars().collect();
    if chars.windows(2).all(|w| w[0] == w[1]) {
        return Some("it repeats one character");
    }
    let step = |a: char, b: char| b as i64 - a as i64;
    let run = chars.windows(2).all(|w| step(w[0], w[1]) == 1) || chars.windows(2).all(|w| step(w[0], w[1]) == -1);
    if run {
        return Some("it is a run of consecutive characters");
    }
    None
}

/// The signature a website computes for a logged-in customer: hex HMAC-SHA256 of the user id
/// with the site's secret.
pub fn sign_identity(secret: &str, user_id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(user_id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Checks a signed identity in constant time.
pub fn verify_identity(secret: &str, user_id: &str, signature: &str) -> bool {
    let Ok(sig) = hex::decode(signature.trim()) else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(user_id.as_bytes());
    mac.verify_slice(&sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_stored_hashed() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
        assert_eq!(new_id().len(), 32);
    }

    #[test]
    fn passwords_verify_and_wrong_ones_do_not() {
        let stored = hash_with("正确的密码", b"salt-salt-salt-1", 1_000);
        assert!(verify_password("正确的密码", &stored));
        assert!(!verify_password("错误的密码", &stored));
        assert!(!verify_password("正确的密码", "garbage"));
    }

    #[test]
    fn common_and_trivial_passwords_are_refused() {
        for weak in ["12345678", "Password123", "woaini1314", "qwertyuiop", " 1q2w3e4r ", "zzzzzzzzz", "abcdefghij", "98765432", "xiaowang"] {
            assert!(weak_password(weak, "xiaowang", "小王").is_some(), "{weak} passed");
        }
        assert!(weak_password("小王小王小王小王", "xw", "小王小王小王小王").is_some(), "the name");
        for fine in ["correct horse battery", "password-123", "宁静致远-2026", "Tr0ub4dor&3x"] {
            assert_eq!(weak_password(fine, "xiaowang", "小王"), None, "{fine} refused");
        }
        let listed = COMMON_PASSWORDS.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).count();
        assert!(listed >= 200, "{listed} common passwords");
    }

    #[test]
    fn identities_are_signed_with_the_site_secret() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let sig = sign_identity("Jefe", "what do ya want for nothing?");
        assert_eq!(sig, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert!(verify_identity("Jefe", "what do ya want for nothing?", &sig));
        assert!(!verify_identity("Jefe", "someone else", &sig));
        assert!(!verify_identity("other secret", "what do ya want for nothing?", &sig));
        assert!(!verify_identity("Jefe", "what do ya want for nothing?", "not hex"));
    }
}
