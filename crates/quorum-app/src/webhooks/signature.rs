//! The `Quorum-Signature` header: `t=<Unix seconds>,v1=<hex HMAC-SHA256>` over
//! `"{t}.{body}"` with the subscription's secret — the scheme Stripe documents, so receivers
//! can reuse what they know. While a rotated secret's overlap window lasts, the header carries
//! one `v1=` per valid secret and a receiver accepts any of them.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const HEADER: &str = "Quorum-Signature";

/// How far a signature's timestamp may be from the receiver's clock: older deliveries are
/// refused as replays.
pub const TOLERANCE_SECONDS: i64 = 300;

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The header's value for `body` sent at `timestamp` (Unix seconds) under each secret.
pub fn sign(secrets: &[&str], timestamp: i64, body: &[u8]) -> String {
    let mut header = format!("t={timestamp}");
    for secret in secrets {
        header.push_str(",v1=");
        header.push_str(&mac(secret, timestamp, body));
    }
    header
}

/// Checks a header as a receiver would: some `v1` matches `secret`, and the timestamp is
/// within [`TOLERANCE_SECONDS`] of `now` (Unix seconds).
pub fn verify(header: &str, secret: &str, body: &[u8], now: i64) -> Result<(), &'static str> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.push(value),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or("the header has no timestamp")?;
    if (now - timestamp).abs() > TOLERANCE_SECONDS {
        return Err("the timestamp is too far from now");
    }
    let expected = mac(secret, timestamp, body);
    // Compared in constant time: a timing difference would tell how much of a guess was right.
    let same = |candidate: &str| {
        candidate.len() == expected.len()
            && candidate
                .bytes()
                .zip(expected.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    };
    if signatures.iter().any(|s| same(s)) {
        Ok(())
    } else {
        Err("no signature matches")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // Test case 2 of RFC 4231: the HMAC the signatures are made of.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn signatures_verify_with_any_current_secret_and_only_in_time() {
        let body = br#"{"id":"evt_1"}"#;
        let header = sign(&["new", "old"], 1_700_000_000, body);
        assert!(header.starts_with("t=1700000000,v1="));
        assert_eq!(header.matches("v1=").count(), 2);
        assert_eq!(verify(&header, "new", body, 1_700_000_100), Ok(()));
        assert_eq!(verify(&header, "old", body, 1_700_000_100), Ok(()));
        assert!(verify(&header, "other", body, 1_700_000_100).is_err());
        assert!(verify(&header, "new", b"{}", 1_700_000_100).is_err());
        assert!(verify(&header, "new", body, 1_700_000_000 + TOLERANCE_SECONDS + 1).is_err());
        assert!(verify("v1=00", "new", body, 0).is_err());
        // The signed string is the timestamp, a dot and the body.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"new").unwrap();
        mac.update(b"1700000000.");
        mac.update(body);
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(
            header,
            format!(
                "t=1700000000,v1={expected},v1={}",
                super::mac("old", 1_700_000_000, body)
            )
        );
    }
}
