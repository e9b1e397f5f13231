//! WireGuard public keys as published in node annotations.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// A WireGuard public key: 32 bytes, written as standard base64 (44 characters).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WireGuardKey([u8; 32]);

/// Why a key annotation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyParseError {
    #[error("not base64: {0}")]
    NotBase64(String),
    #[error("decodes to {0} bytes; a WireGuard key is 32 bytes")]
    WrongLength(usize),
    #[error("is all zeros, which is not a usable WireGuard key")]
    Zero,
}

impl WireGuardKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl FromStr for WireGuardKey {
    type Err = KeyParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|e| KeyParseError::NotBase64(e.to_string()))?;
        let bytes: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyParseError::WrongLength(bytes.len()))?;
        if bytes == [0; 32] {
            return Err(KeyParseError::Zero);
        }
        Ok(Self(bytes))
    }
}

impl fmt::Display for WireGuardKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for WireGuardKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WireGuardKey({})", self.to_base64())
    }
}

impl serde::Serialize for WireGuardKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> serde::Deserialize<'de> for WireGuardKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        let text = "YFtnIPi7Ix7v4kdjyEXqm2ErCAgH1Ls1EFsYH2H+/Gk=";
        let key: WireGuardKey = text.parse().unwrap();
        assert_eq!(key.to_string(), text);
    }

    #[test]
    fn refuses_bad_keys_with_the_reason() {
        let cases = [
            ("not base64!", "not base64"),
            ("AAAA", "decodes to 3 bytes"),
            ("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "all zeros"),
        ];
        for (text, reason) in cases {
            let err = text.parse::<WireGuardKey>().unwrap_err().to_string();
            assert!(err.contains(reason), "{text}: {err}");
        }
    }
}
