//! How a name sounds to the voice agent: the words it matches a caller's words against. Two active
//! providers, or two active appointment types, whose names have the same words could never be
//! told apart on a call, so the store refuses the second.

/// Titles callers and models add or drop at will before a provider's name.
pub const TITLES: &[&str] = &["dr", "doctor", "doc", "prof", "mr", "mrs", "ms", "miss"];

/// Words that say nothing about which kind of visit is meant.
pub const FILLER: &[&str] = &["a", "an", "the", "appointment", "visit", "for"];

/// The words of a name as matched: lower-case, without punctuation or the `ignored` words.
pub fn words(name: &str, ignored: &[&str]) -> Vec<String> {
    name.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty() && !ignored.contains(t))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_case_and_punctuation_do_not_tell_names_apart() {
        assert_eq!(words("Dr. Jane SMITH", TITLES), words("jane smith", TITLES));
        assert_eq!(words("Doctor Smith", TITLES), words("Smith", TITLES));
        assert_ne!(words("Dr. Jane Smith", TITLES), words("Dr. John Smith", TITLES));
        assert_eq!(words("A follow-up visit", FILLER), vec!["follow", "up"]);
    }
}
