//! "Did you mean" suggestions for misspelt keys: `strsim`'s optimal-string-alignment distance
//! (insertions, deletions, substitutions and swaps of two adjacent characters cost 1), the same
//! measure as the schedule's suggestions in `framer-train`.

/// The closest of `candidates` to `word`, if close enough to be a plausible typo.
pub(crate) fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1) + 1;
    candidates
        .iter()
        .map(|c| (strsim::osa_distance(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `unknown {what} `{word}`` with a suggestion or the list of valid keys.
pub(crate) fn unknown_key_message(what: &str, word: &str, candidates: &[&str]) -> String {
    match did_you_mean(word, candidates) {
        Some(s) => format!("unknown {what} `{word}`; did you mean `{s}`?"),
        None => {
            let list: Vec<String> = candidates.iter().map(|c| format!("`{c}`")).collect();
            format!(
                "unknown {what} `{word}`; expected one of {}",
                list.join(", ")
            )
        }
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn distance_matches_hand_counts() {
        assert_eq!(strsim::osa_distance("studnet", "student"), 1); // one swap
        assert_eq!(strsim::osa_distance("teacher", "teacher"), 0);
        assert_eq!(strsim::osa_distance("", "tap"), 3);
        assert_eq!(strsim::osa_distance("readuot", "readout"), 1);
    }

    #[test]
    fn suggests_only_close_words() {
        let keys = ["student", "teacher", "indices", "tap"];
        assert_eq!(did_you_mean("studnet", &keys), Some("student"));
        assert_eq!(did_you_mean("teachr", &keys), Some("teacher"));
        assert_eq!(did_you_mean("tapp", &keys), Some("tap"));
        assert_eq!(did_you_mean("banana", &keys), None);
    }
}
