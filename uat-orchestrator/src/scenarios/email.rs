use super::{Run, Steps};

pub async fn run(_run: &mut Run<'_>) -> Steps {
    let mut steps = Steps::new(1);
    steps.error(
        "deliver the confirmation email",
        "confirmation email is not built yet",
    );
    steps
}
