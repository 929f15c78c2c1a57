//! Request signatures: SHA-1 of the sorted token, timestamp, nonce (and, in safe mode, the
//! encrypted body), compared in constant time.

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// Sorts the parts, joins them and hashes: lower-case hex SHA-1.
pub fn sign(parts: &[&str]) -> String {
    let mut parts = parts.to_vec();
    parts.sort_unstable();
    let mut h = Sha1::new();
    for p in parts {
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Whether `signature` is the signature of `parts`, compared in constant time (case-blind,
/// as hex is).
pub fn verify(signature: &str, parts: &[&str]) -> bool {
    let expected = sign(parts);
    let given = signature.to_ascii_lowercase();
    expected.as_bytes().ct_eq(given.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of WeChat's push guide (see docs/wechat.md of the shared docs).
    #[test]
    fn official_worked_example() {
        let joined = {
            let mut p = ["AAAAA", "1714037059", "486452656"];
            p.sort_unstable();
            p.concat()
        };
        assert_eq!(joined, "1714037059486452656AAAAA");
        // SHA-1 of the joined string, computed independently (Python hashlib).
        let expected = "899cf89e464efb63f54ddac96b0a0a235f53aa78".to_string();
        assert_eq!(hex::encode(Sha1::digest(joined.as_bytes())), expected);
        assert_eq!(sign(&["AAAAA", "1714037059", "486452656"]), expected);
        // Order of the parts does not matter, case of the hex does not either.
        assert!(verify(&expected.to_uppercase(), &["486452656", "AAAAA", "1714037059"]));
        assert!(!verify(&expected, &["AAAAA", "1714037059", "486452657"]));
        assert!(!verify("", &["AAAAA", "1714037059", "486452656"]));
        assert!(!verify(&expected[..39], &["AAAAA", "1714037059", "486452656"]));
    }
}
