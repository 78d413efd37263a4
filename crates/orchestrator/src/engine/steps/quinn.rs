//! Quinn: the caption and the publication (Upload-Post).

use super::*;

/// Quinn: caption and hashtags, one publish per run under our own request
/// id, resolved by status when an answer was lost.
pub(super) async fn quinn(step: &mut Step<'_>) -> Result<Outcome, StepError> {
    let persona = Persona::Quinn;
    let providers = match step.providers(persona) {
        Ok(providers) => providers,
        Err(outcome) => return Ok(outcome),
    };
    let key = myloware_core::ids::publish_request_id(&step.run_id, step.state.publish_attempt);
    let publish = match step.state.publish.clone() {
        Some(publish) => publish,
        None => {
            let video_url = match assets::video_to_publish(step, &providers).await? {
                Ok(url) => url,
                Err(outcome) => return Ok(outcome),
            };
            let Caption { caption, hashtags } = match step.state.caption.clone() {
                Some(words) => words,
                None => match llm(step, persona) {
                    Err(outcome) => return Ok(outcome),
                    Ok(None) => {
                        let (caption, hashtags) = scripted::caption(&step.request.project_spec, &step.state.ideas);
                        Caption { caption, hashtags }
                    }
                    Ok(Some(llm)) => {
                        match llm.caption(work(step, None), &step.state.ideas, &video_url).await {
                            Ok(answer) => {
                                record_usage(step, persona, &answer.usage);
                                let (caption, hashtags) = answer.output;
                                step.state.caption = Some(Caption { caption, hashtags });
                                // Keep the words before publishing them.
                                return Ok(Outcome::Checkpoint);
                            }
                            Err(reason) => return Ok(llm_failed(persona, reason)),
                        }
                    }
                },
            };
            if let Some(held) = budget::hold(step, persona, "upload_post", "publish", 1).await? {
                return Ok(held);
            }
            let spec = &step.request.project_spec;
            let request = PublishRequest {
                run_id: step.run_id.clone(),
                video_url,
                caption: format!("{caption} {}", hashtags.join(" ")).trim().to_string(),
                platforms: spec
                    .publish
                    .as_ref()
                    .map(|p| p.platforms.clone())
                    .unwrap_or_else(|| vec!["tiktok".into()]),
                profile: spec.publish.as_ref().and_then(|p| p.profile.clone()),
            };
            let state = match begin(
                step,
                &key,
                "upload_post",
                "publish",
                &serde_json::to_value(&request).expect("serializes"),
            )
            .await?
            {
                Journaled::Fresh => {
                    let state = counted(
                        step,
                        "upload_post",
                        "publish",
                        providers.publish.publish(&key, &request),
                    )
                    .await?;
                    crate::faults::point("quinn.after_publish");
                    match state {
                        // Maybe posted: ask by our request id, never post again.
                        Err(ProviderError::Unanswered { .. }) => {
                            match counted(step, "upload_post", "status", providers.publish.status(&key)).await? {
                                Ok(Some(state)) => Ok(state),
                                Ok(None) | Err(_) => Ok(PublishState::Pending),
                            }
                        }
                        other => other,
                    }
                }
                Journaled::Answered(response) => Ok(serde_json::from_value(response).unwrap_or(PublishState::Pending)),
                Journaled::Cancelled => return Ok(Outcome::Cancelled),
                Journaled::Failed(response) => {
                    return Ok(fail(
                        persona,
                        "upload_post.publish_failed",
                        response["error"].as_str().unwrap_or("publish failed"),
                    ));
                }
                // Our request id makes the lost answer recoverable: ask, and
                // publish only if the provider never saw it.
                Journaled::Unanswered => {
                    match counted(step, "upload_post", "status", providers.publish.status(&key)).await? {
                        Ok(Some(state)) => Ok(state),
                        Ok(None) => {
                            counted(
                                step,
                                "upload_post",
                                "publish",
                                providers.publish.publish(&key, &request),
                            )
                            .await?
                        }
                        Err(err) => Err(err),
                    }
                }
            };
            let state = match state {
                Ok(state) => state,
                Err(err) => {
                    finish(step, &key, false, json!({"error": err.to_string()})).await?;
                    return Ok(provider_failure(persona, "upload_post.publish_failed", &err));
                }
            };
            let answer = serde_json::to_value(&state).expect("serializes");
            succeeded(step, &key, "upload_post", "publish", answer).await?;
            let publish = Publish {
                caption,
                hashtags,
                urls: Vec::new(),
                polls: 0,
                requested_at: Some(Utc::now()),
            };
            step.state.publish = Some(publish.clone());
            return Ok(published(step, publish, state));
        }
    };
    let state = match counted(step, "upload_post", "status", providers.publish.status(&key)).await? {
        Ok(Some(state)) => state,
        Ok(None) | Err(_) => PublishState::Pending,
    };
    Ok(published(step, publish, state))
}

pub(super) fn published(step: &mut Step<'_>, publish: Publish, state: PublishState) -> Outcome {
    match state {
        PublishState::Published { urls } => {
            for url in &urls {
                step.emit(
                    EventKind::ArtifactCreated,
                    json!({"kind": "publish.url", "persona": "quinn", "data": {"url": url, "platform": "tiktok"}}),
                );
            }
            job_ended(step, Job::UploadPost, true, publish.requested_at);
            let output = json!({"caption": publish.caption, "hashtags": publish.hashtags, "publishUrls": urls});
            persona_completed(step, Persona::Quinn, output);
            step.state.publish = Some(Publish { urls, ..publish });
            Outcome::Advance
        }
        PublishState::Failed { message } => {
            job_ended(step, Job::UploadPost, false, publish.requested_at);
            fail(Persona::Quinn, "upload_post.publish_failed", message)
        }
        PublishState::Pending => {
            let polls = publish.polls + 1;
            if polls > 60 {
                return fail(
                    Persona::Quinn,
                    "upload_post.publish_timeout",
                    "the publish did not complete",
                );
            }
            step.state.publish = Some(Publish { polls, ..publish });
            Outcome::Park {
                wait: json!({"for": "publish"}),
                wake_at: Some(Utc::now() + POLL_BACKOFF.after(polls.into())),
            }
        }
    }
}
