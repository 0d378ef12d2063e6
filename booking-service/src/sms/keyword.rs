//! What an inbound SMS asks of us: the opt-out and opt-in keywords carriers and Twilio honour.

/// A keyword a patient texts to stop or resume SMS from one sender number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    OptOut,
    OptIn,
}

/// Twilio's default opt-out keywords (its Advanced Opt-Out lists the same).
const OPT_OUT: [&str; 8] = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"];
const OPT_IN: [&str; 3] = ["START", "UNSTOP", "YES"];

impl Keyword {
    /// The keyword a message consists of (surrounding white space and letter case aside), if
    /// any. Anything else, a sentence containing "stop" included, is no keyword: carriers read
    /// them the same way.
    pub fn of(body: &str) -> Option<Self> {
        let word = body.trim();
        if OPT_OUT.iter().any(|k| k.eq_ignore_ascii_case(word)) {
            Some(Self::OptOut)
        } else if OPT_IN.iter().any(|k| k.eq_ignore_ascii_case(word)) {
            Some(Self::OptIn)
        } else {
            None
        }
    }

    /// Twilio's own reading of the message (`OptOutType`, sent with Advanced Opt-Out, where a
    /// clinic may have set keywords of its own): `STOP` or `START`; `HELP` and others are none.
    pub fn of_opt_out_type(kind: &str) -> Option<Self> {
        match kind.trim() {
            k if k.eq_ignore_ascii_case("STOP") => Some(Self::OptOut),
            k if k.eq_ignore_ascii_case("START") => Some(Self::OptIn),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Keyword;

    #[test]
    fn keywords_are_read_whatever_their_case_and_surrounding_space() {
        for stop in ["STOP", " stop\n", "Stop", "stopall", "UNSUBSCRIBE", "cancel", "End", "quit", "revoke", "OptOut"] {
            assert_eq!(Keyword::of(stop), Some(Keyword::OptOut), "{stop:?}");
        }
        for start in ["START", "start ", "unstop", "Yes"] {
            assert_eq!(Keyword::of(start), Some(Keyword::OptIn), "{start:?}");
        }
    }

    #[test]
    fn other_messages_are_no_keyword() {
        for other in ["", "HELP", "please stop", "STOP!", "S T O P", "stopp", "yes please"] {
            assert_eq!(Keyword::of(other), None, "{other:?}");
        }
    }
}
