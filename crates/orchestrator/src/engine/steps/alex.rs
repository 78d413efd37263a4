//! Alex: the render (Shotstack) of the finished clips, copied into the
//! project's asset store ([`rendered`], which Quinn also uses to render
//! again a video gone from the store).

use super::*;

/// Alex: the edit, one journaled render per run, polled to done, copied.
pub(super) async fn alex(step: &mut Step<'_>) -> Result<Outcome, StepError> {
    let persona = Persona::Alex;
    let providers = match step.providers(persona) {
        Ok(providers) => providers,
        Err(outcome) => return Ok(outcome),
    };
    if step.state.render.is_none() && step.state.overlays.is_none() {
        match llm(step, persona) {
            Err(outcome) => return Ok(outcome),
            Ok(None) => {}
            Ok(Some(llm)) => {
                match llm
                    .overlays(work(step, Some(Gate::Prepublish)), &step.state.ideas, &step.state.clips)
                    .await
                {
                    Ok(answer) => {
                        record_usage(step, persona, &answer.usage);
                        step.state.overlays = Some(answer.output);
                        // Keep the answer before paying for the render.
                        return Ok(Outcome::Checkpoint);
                    }
                    Err(reason) => return Ok(llm_failed(persona, reason)),
                }
            }
        }
    }
    match rendered(step, &providers, persona).await? {
        Ok((edit, url)) => {
            persona_completed(step, persona, json!({"edit": edit, "renderUrl": url}));
            Ok(Outcome::Advance)
        }
        Err(outcome) => Ok(outcome),
    }
}

/// The run's render: requested once (journaled), polled to done, then
/// copied into the asset store (the mock render is written there as is).
/// `Ok((edit, url))` once the copy is made, `url` the copy's; `Err` is the
/// step's outcome meanwhile (a park while Shotstack renders or the store
/// is retried) or its failure, on behalf of `persona`.
pub(super) async fn rendered(
    step: &mut Step<'_>,
    providers: &Providers,
    persona: Persona,
) -> Result<Result<(Value, String), Outcome>, StepError> {
    let overlays = step
        .state
        .overlays
        .clone()
        .unwrap_or_else(|| scripted::overlays(&step.state.ideas));
    let edit = scripted::edit(&step.request.project_spec, &overlays, &step.state.clips);
    if step.state.render.is_none() {
        if let Some(held) = budget::hold(step, persona, "shotstack", "render", 1).await? {
            return Ok(Err(held));
        }
        let key = render_key(&step.run_id, step.state.render_attempt);
        if !jobs::slot(step, "shotstack", &key).await? {
            return Ok(Err(jobs::wait_for_slot("shotstack")));
        }
        let request = RenderRequest {
            run_id: step.run_id.clone(),
            edit: edit.clone(),
        };
        let call = IdCall {
            key: &key,
            provider: "shotstack",
            operation: "render",
            request: &edit,
            field: "id",
            crash_point: "alex.after_render",
            persona,
        };
        let render_id = match journaled_id(
            step,
            call,
            || providers.render.recover(&key),
            || providers.render.render(&key, &request),
        )
        .await?
        {
            Ok(Some(id)) => id,
            Ok(None) => {
                return Ok(Err(fail(
                    persona,
                    "shotstack.render_unknown",
                    format!(
                        "a render was requested but its answer was lost; not rendering twice. Check Shotstack, then retry: mw runs retry {}",
                        step.run_id
                    ),
                )));
            }
            Err(outcome) => return Ok(Err(outcome)),
        };
        step.state.render = Some(Render {
            id: render_id,
            url: None,
            polls: 0,
            requested_at: Some(Utc::now()),
            asset: None,
            copies: 0,
            checks: 0,
        });
    }
    let render = step.state.render.clone().expect("set above");
    let source = match &render.url {
        Some(url) => url.clone(),
        None => match counted(step, "shotstack", "status", providers.render.status(&render.id)).await? {
            Ok(RenderState::Done { url }) => {
                job_ended(step, Job::Shotstack, true, render.requested_at);
                jobs::ended(step, render_key(&step.run_id, step.state.render_attempt));
                step.state.render = Some(Render {
                    url: Some(url.clone()),
                    ..render.clone()
                });
                url
            }
            Ok(RenderState::Failed { message }) => {
                job_ended(step, Job::Shotstack, false, render.requested_at);
                jobs::ended(step, render_key(&step.run_id, step.state.render_attempt));
                return Ok(Err(fail(persona, "shotstack.render_failed", message)));
            }
            Ok(RenderState::Rendering) | Err(_) => {
                let polls = render.polls + 1;
                if polls > 60 {
                    return Ok(Err(fail(
                        persona,
                        "shotstack.render_timeout",
                        "the render did not finish",
                    )));
                }
                step.state.render = Some(Render { polls, ..render });
                return Ok(Err(Outcome::Park {
                    wait: json!({"for": "render"}),
                    wake_at: Some(Utc::now() + POLL_BACKOFF.after(polls.into())),
                }));
            }
        },
    };
    let asset = match step.state.render.as_ref().and_then(|r| r.asset.clone()) {
        Some(asset) => asset,
        None => match assets::copy(step, persona, &source).await {
            Ok(asset) => asset,
            Err(outcome) => return Ok(Err(outcome)),
        },
    };
    Ok(Ok((edit, asset.url)))
}

/// The journal key of the run's render (`attempt`: renders a retry asked
/// for after a failed one).
fn render_key(run_id: &str, attempt: u32) -> String {
    match attempt {
        0 => format!("{run_id}:alex:render"),
        n => format!("{run_id}:alex:render:retry:{n}"),
    }
}
