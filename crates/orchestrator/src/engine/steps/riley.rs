//! Riley: the clips (kie.ai), submitted through the journal, awaited by
//! callback or by polling, retried within the attempt budget.

use super::*;

pub(super) fn callback_url(step: &Step<'_>, index: u32) -> String {
    let config = &step.engine.config;
    // Mock callbacks come from inside the deployment; real ones from kie.ai.
    let base = match step.request.providers_mode {
        ProviderMode::Mock => &config.api_url,
        ProviderMode::Live => &config.public_base_url,
    };
    let purpose = signing::clip_purpose(step.request.providers_mode, index);
    let token = signing::callback_token(config.hitl_secret_bytes(), &step.run_id, &purpose);
    let mut url = base.join("/v1/webhooks/kieai").expect("valid path");
    url.query_pairs_mut()
        .append_pair("runId", &step.run_id)
        .append_pair("index", &index.to_string())
        .append_pair("token", &token);
    url.to_string()
}

/// Riley: scripts, one journaled submission per clip, then waits for every
/// clip. Its result comes only from kie.ai's `record-info`, asked when a
/// callback (relayed as a `clip.reported` signal) names the clip's task,
/// and for every pending clip after a while (callbacks may be lost).
pub(super) async fn riley(step: &mut Step<'_>) -> Result<Outcome, StepError> {
    let persona = Persona::Riley;
    if step.state.scripts.is_empty() {
        let from_llm = match llm(step, persona) {
            Err(outcome) => return Ok(outcome),
            Ok(llm) => llm,
        };
        let scripts = match from_llm {
            None => scripted::scripts(&step.request.project_spec, &step.state.ideas),
            Some(llm) => match llm.scripts(work(step, None), &step.state.ideas).await {
                Ok(answer) => {
                    record_usage(step, persona, &answer.usage);
                    answer.output
                }
                Err(reason) => return Ok(llm_failed(persona, reason)),
            },
        };
        step.state.clips = scripts
            .iter()
            .map(|s| Clip {
                index: s.index,
                task_id: None,
                submitted: false,
                status: ClipStatus::Pending,
                url: None,
                duration: s.duration,
                attempt: 0,
                submitted_at: None,
                revision: 0,
                feedback: None,
            })
            .collect();
        step.state.scripts = scripts;
        if from_llm.is_some() {
            // Keep the answer before paying for clips.
            return Ok(Outcome::Checkpoint);
        }
    }
    let providers = match step.providers(persona) {
        Ok(providers) => providers,
        Err(outcome) => return Ok(outcome),
    };
    let aspect_ratio = step
        .request
        .project_spec
        .specs
        .as_ref()
        .map_or("9:16".to_string(), |s| s.aspect_ratio.clone());

    let unsubmitted = step.state.clips.iter().filter(|c| !c.submitted).count();
    if let Some(held) = budget::hold(step, persona, "kieai", "submit", unsubmitted).await? {
        return Ok(held);
    }
    let mut waiting_for_slot = false;
    // One clip's answer is written with the next clip's begin.
    hold_answers(step);
    for i in 0..step.state.clips.len() {
        if step.state.clips[i].submitted {
            continue;
        }
        let script = step.state.scripts[i].clone();
        // A clip made again for a reviewer carries their words.
        let prompt = match &step.state.clips[i].feedback {
            Some(feedback) => format!("{}\nChanges asked by the reviewer: {feedback}", script.prompt),
            None => script.prompt.clone(),
        };
        let request = ClipRequest {
            run_id: step.run_id.clone(),
            index: script.index,
            prompt: prompt.clone(),
            duration_seconds: script.duration,
            aspect_ratio: aspect_ratio.clone(),
            callback_url: callback_url(step, script.index),
        };
        let key = clip_key(&step.run_id, &step.state.clips[i]);
        if !jobs::slot(step, "kieai", &key).await? {
            waiting_for_slot = true;
            break;
        }
        let journal_request = json!({"index": script.index, "prompt": prompt});
        let call = IdCall {
            key: &key,
            provider: "kieai",
            operation: "submit",
            request: &journal_request,
            field: "taskId",
            crash_point: "riley.after_submit",
            persona,
        };
        // Never submit twice: an unknown submission (kie.ai cannot be asked
        // by our key) waits for its callback, whose URL names run and clip.
        let task_id = match journaled_id(
            step,
            call,
            || providers.video.recover(&key),
            || providers.video.submit(&key, &request),
        )
        .await?
        {
            Ok(task_id) => task_id,
            Err(outcome) => return Ok(outcome),
        };
        let clip = &mut step.state.clips[i];
        clip.submitted = true;
        clip.task_id = task_id.clone();
        clip.submitted_at = Some(Utc::now());
        step.emit(
            EventKind::ArtifactCreated,
            json!({"kind": "kieai.job", "persona": "riley", "data": {"index": script.index, "taskId": task_id}}),
        );
    }
    stop_holding(step).await?;

    // A callback is only a trigger: ask kie.ai about the task it named
    // (once per clip), never take its body's word.
    let mut reported: Vec<(u32, String)> = Vec::new();
    for signal in std::mem::take(&mut step.signals) {
        match serde_json::from_value::<Signal>(signal.body) {
            Ok(
                Signal::ClipReported { task_id, index }
                | Signal::ClipCompleted { task_id, index, .. }
                | Signal::ClipFailed { task_id, index, .. },
            ) => {
                if !reported.iter().any(|(i, _)| *i == index) {
                    reported.push((index, task_id));
                }
            }
            Ok(other) => {
                tracing::warn!(runId = %step.run_id, signal = ?other, "signal ignored while waiting for clips")
            }
            Err(err) => tracing::warn!(runId = %step.run_id, error = %err, "unreadable signal ignored"),
        }
    }
    for (index, task_id) in reported {
        let Some(clip) = step.state.clips.iter().find(|c| c.index == index) else {
            tracing::warn!(runId = %step.run_id, clip = index, "report of an unknown clip ignored");
            continue;
        };
        if clip.status != ClipStatus::Pending {
            continue;
        }
        // The task we submitted; the reported one only when the submission's
        // answer was lost (the token of the URL binds run and clip).
        let task_id = match &clip.task_id {
            Some(ours) if *ours != task_id => {
                tracing::info!(runId = %step.run_id, clip = index, %task_id, "report of an earlier attempt ignored");
                continue;
            }
            Some(ours) => ours.clone(),
            None => {
                // The callback names the task of a submission whose answer
                // was lost: its journal entry (and its cost) has its answer.
                let key = clip_key(&step.run_id, clip);
                let answer = json!({"taskId": task_id, "recovered": true});
                succeeded(step, &key, "kieai", "submit", answer).await?;
                task_id
            }
        };
        if let Some(outcome) = clip_status(step, &providers, index, task_id).await? {
            return Ok(outcome);
        }
    }

    let now = Utc::now();
    let since = *step.state.clips_waiting_since.get_or_insert(now);
    let engine_config = &step.engine.config.engine;
    let mock_delay = step.engine.config.providers.mock_delay_ms;
    let (poll_after, timeout) = match step.request.providers_mode {
        ProviderMode::Mock => (
            chrono::Duration::milliseconds((mock_delay as i64 * 5).max(2000)),
            chrono::Duration::seconds(engine_config.clip_timeout_secs.min(120) as i64),
        ),
        ProviderMode::Live => (
            chrono::Duration::seconds(engine_config.clip_poll_after_secs as i64),
            chrono::Duration::seconds(engine_config.clip_timeout_secs as i64),
        ),
    };
    // Callbacks may be lost: past the poll time, ask the provider.
    if now >= since + poll_after * (step.state.clip_polls as i32 + 1) {
        step.state.clip_polls += 1;
        let pending: Vec<(u32, String)> = step
            .state
            .clips
            .iter()
            .filter(|c| c.status == ClipStatus::Pending)
            .filter_map(|c| c.task_id.clone().map(|t| (c.index, t)))
            .collect();
        for (index, task_id) in pending {
            if let Some(outcome) = clip_status(step, &providers, index, task_id).await? {
                return Ok(outcome);
            }
        }
    }
    if waiting_for_slot {
        // The wait for clips (and its timeout) starts once all are submitted.
        step.state.clips_waiting_since = None;
        return Ok(Outcome::Park {
            wait: json!({"for": "clips", "jobSlot": true}),
            wake_at: Some(Utc::now() + jobs::SLOT_RECHECK),
        });
    }
    if step.state.clips.iter().any(|c| !c.submitted) {
        // A failed clip is to be submitted again: at once, in the next step.
        return Ok(Outcome::Park {
            wait: json!({"for": "clips", "retrying": true}),
            wake_at: Some(Utc::now()),
        });
    }
    let waiting: Vec<u32> = step
        .state
        .clips
        .iter()
        .filter(|c| c.status != ClipStatus::Completed)
        .map(|c| c.index)
        .collect();
    if waiting.is_empty() {
        let clips = step.state.clips.clone();
        let output = json!({"scripts": step.state.scripts, "clips": clips});
        persona_completed(step, persona, output);
        return Ok(Outcome::Advance);
    }
    if now >= since + timeout {
        return Ok(fail(
            persona,
            "kieai.clip_timeout",
            format!("clips {waiting:?} not ready after {} s", timeout.num_seconds()),
        ));
    }
    let next_poll = since + poll_after * (step.state.clip_polls as i32 + 1);
    Ok(Outcome::Park {
        wait: json!({"for": "clips", "clips": waiting}),
        wake_at: Some(next_poll.min(since + timeout)),
    })
}

/// Asks kie.ai's `record-info` about a clip's task and applies its answer
/// (the only source of a clip's result); `Some` ends the step.
pub(super) async fn clip_status(
    step: &mut Step<'_>,
    providers: &myloware_providers::Providers,
    index: u32,
    task_id: String,
) -> Result<Option<Outcome>, StepError> {
    match counted(step, "kieai", "status", providers.video.status(&task_id)).await? {
        Ok(ClipState::Succeeded { url }) => complete_clip(step, index, Some(task_id), url),
        Ok(ClipState::Failed { code, message }) => {
            return Ok(clip_failed(step, index, Some(task_id), code, &message));
        }
        Ok(ClipState::Generating) => {}
        Err(err) => {
            tracing::warn!(runId = %step.run_id, clip = index, error = %err, "clip status lookup failed")
        }
    }
    Ok(None)
}

/// The journal key of a clip's submission: each retry and each revision
/// is a new, paid call.
pub(super) fn clip_key(run_id: &str, clip: &Clip) -> String {
    let index = clip.index;
    let revision = match clip.revision {
        0 => String::new(),
        n => format!(":revision:{n}"),
    };
    match clip.attempt {
        0 => format!("{run_id}:riley:clip:{index}{revision}"),
        n => format!("{run_id}:riley:clip:{index}{revision}:attempt:{n}"),
    }
}

/// A clip failed: retry it if the project allows (`specs.clipRetries`),
/// else fail the run at once with the provider's message. Reports of an
/// earlier attempt are ignored.
pub(super) fn clip_failed(
    step: &mut Step<'_>,
    index: u32,
    task_id: Option<String>,
    code: i64,
    message: &str,
) -> Option<Outcome> {
    let retries = step.request.project_spec.specs.as_ref().map_or(0, |s| s.clip_retries);
    let clip = step.state.clips.iter_mut().find(|c| c.index == index)?;
    if clip.status == ClipStatus::Completed || (clip.task_id.is_some() && task_id.is_some() && clip.task_id != task_id)
    {
        return None;
    }
    let (attempt, submitted_at, key) = (clip.attempt, clip.submitted_at, clip_key(&step.run_id, clip));
    job_ended(step, Job::KieAi, false, submitted_at);
    jobs::ended(step, key);
    step.emit(
        EventKind::ArtifactCreated,
        json!({"kind": "kieai.clip", "persona": "riley", "data": {"index": index, "taskId": task_id, "status": "failed", "code": code, "message": message, "attempt": attempt}}),
    );
    let clip = step.state.clips.iter_mut().find(|c| c.index == index)?;
    if attempt < retries {
        clip.attempt += 1;
        clip.submitted = false;
        clip.task_id = None;
        tracing::info!(runId = %step.run_id, clip = index, attempt = clip.attempt, "clip failed; submitting it again");
        return None;
    }
    // A retry of the run submits it again (and only it).
    clip.status = ClipStatus::Failed;
    let tries = if attempt == 0 {
        String::new()
    } else {
        format!(" after {} attempts", attempt + 1)
    };
    Some(fail(
        Persona::Riley,
        "kieai.clip_failed",
        format!("clip {index} failed{tries}: {message} (kie.ai code {code})"),
    ))
}

pub(super) fn complete_clip(step: &mut Step<'_>, index: u32, task_id: Option<String>, url: String) {
    let Some(clip) = step.state.clips.iter_mut().find(|c| c.index == index) else {
        tracing::warn!(runId = %step.run_id, clip = index, "completion for an unknown clip ignored");
        return;
    };
    if clip.status == ClipStatus::Completed {
        return;
    }
    clip.status = ClipStatus::Completed;
    clip.url = Some(url.clone());
    if clip.task_id.is_none() {
        clip.task_id = task_id;
    }
    let (task_id, submitted_at, key) = (clip.task_id.clone(), clip.submitted_at, clip_key(&step.run_id, clip));
    job_ended(step, Job::KieAi, true, submitted_at);
    jobs::ended(step, key);
    step.emit(
        EventKind::ArtifactCreated,
        json!({"kind": "kieai.clip", "persona": "riley", "data": {"index": index, "taskId": task_id, "status": "completed", "url": url}}),
    );
}
