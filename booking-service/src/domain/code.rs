//! Confirmation codes: short enough to read out on a call, from an alphabet without look-alikes.

use rand::Rng;

/// No 0/O, 1/I/L, so no character is read as another. Letters that sound alike on a phone line
/// (B/D/P, M/N, F/S) remain: the voice agent reads a code character by character
/// (`vapi::speech`), looks one up among the caller's own appointments only, and when a code
/// heard wrong finds none, reads those out with their codes and asks which.
const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
const LEN: usize = 6;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConfirmationCode(String);

impl ConfirmationCode {
    /// A fresh random code (31^6 ≈ 887 million values; uniqueness per organization is the
    /// database's job).
    pub fn generate() -> Self {
        let mut rng = rand::thread_rng();
        let code = (0..LEN).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
        Self(code)
    }

    /// Reads a code as a person might say or type it: case, spaces and dashes do not matter.
    pub fn parse(input: &str) -> Option<Self> {
        let code: String =
            input.chars().filter(|c| !c.is_whitespace() && *c != '-').map(|c| c.to_ascii_uppercase()).collect();
        let valid = code.len() == LEN && code.bytes().all(|b| ALPHABET.contains(&b));
        valid.then_some(Self(code))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_parse_back_and_avoid_look_alikes() {
        for _ in 0..1000 {
            let code = ConfirmationCode::generate();
            assert_eq!(ConfirmationCode::parse(code.as_str()), Some(code.clone()));
            assert!(!code.as_str().contains(['0', 'O', '1', 'I', 'L']));
        }
    }

    #[test]
    fn spoken_forms_are_normalised() {
        assert_eq!(ConfirmationCode::parse("ab3-x7k").map(|c| c.into_string()), Some("AB3X7K".into()));
        assert_eq!(ConfirmationCode::parse("AB0X7K"), None);
        assert_eq!(ConfirmationCode::parse("ABC"), None);
    }
}
