//! Measurements in plain words, for the people who read the reports: what the voice agent was
//! told, which checks failed. Nothing here prints Rust's debug form (`Err("…")`, `Some(…)`).

/// What one tool call answered: its `result`, or the `error` the agent speaks instead.
pub fn answer(outcome: &Result<String, String>) -> String {
    match outcome {
        Ok(text) => format!("answered: \"{text}\""),
        Err(text) => format!("answered with an error: \"{text}\""),
    }
}

/// What the tool calls of one message answered, in order.
pub fn answers(outcomes: &[Result<String, String>]) -> String {
    if outcomes.is_empty() {
        return "no answer".into();
    }
    outcomes.iter().map(answer).collect::<Vec<_>>().join("; then ")
}

/// A list of things that went wrong, or `none` when it is empty.
pub fn list(items: &[String], none: &str) -> String {
    if items.is_empty() {
        none.to_owned()
    } else {
        items.join("; ")
    }
}

/// The `status` of an appointment (or of a confirmation) in a JSON body, or what stands instead.
pub fn status(body: &serde_json::Value) -> String {
    match body["status"].as_str() {
        Some(status) => status.replace('_', " "),
        None => "of no status (no appointment in the answer)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_answers_read_as_sentences_not_debug_text() {
        let said = answers(&[Ok("You're booked.".into()), Err("That time is taken; try 3 PM.".into())]);
        assert_eq!(
            said,
            "answered: \"You're booked.\"; then answered with an error: \"That time is taken; try 3 PM.\""
        );
        assert_eq!(answers(&[]), "no answer");
        assert_eq!(list(&[], "every attempt refused"), "every attempt refused");
        assert_eq!(list(&["a".into(), "b".into()], "none"), "a; b");
        assert_eq!(status(&serde_json::json!({"status": "no_show"})), "no show");
    }
}
