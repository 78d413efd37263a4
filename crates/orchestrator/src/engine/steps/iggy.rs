//! Iggy: the ideas (scripted, or from the LLM).

use super::*;

pub(super) async fn iggy(step: &mut Step<'_>) -> Outcome {
    let persona = Persona::Iggy;
    let ideas = match llm(step, persona) {
        Err(outcome) => return outcome,
        Ok(None) => scripted::ideas(
            &step.request.project_spec,
            &step.request.input,
            step.state.revision.as_ref().filter(|r| r.gate == Gate::Ideate),
        ),
        Ok(Some(llm)) => match llm.ideas(work(step, Some(Gate::Ideate)), &step.request.input).await {
            Ok(answer) => {
                record_usage(step, persona, &answer.usage);
                answer.output
            }
            Err(reason) => return llm_failed(persona, reason),
        },
    };
    persona_completed(step, persona, json!({"ideas": ideas}));
    step.state.ideas = ideas;
    Outcome::Advance
}
