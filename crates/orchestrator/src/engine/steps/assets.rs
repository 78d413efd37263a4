//! The render's copy in the project's asset store: made right after the
//! render (before the prepublish gate shows it), checked before the
//! publish. Neither is a paid call: a failing store is retried with
//! backoff inside the step (park and wake), then fails the run, and a
//! retry of the run copies (or renders) again. See docs/operations.md,
//! "Storage".

use bytes::Bytes;
use myloware_assets::{AssetError, AssetKey};
use myloware_providers::mock::RENDER_MP4;

use super::*;
use crate::run_state::RenderAsset;

/// Attempts at a copy, or at a check, before the run fails.
const STORE_ATTEMPTS: u32 = 8;
/// Between two attempts: 1 s doubling, capped at 30 s (about 2 min in all).
const STORE_BACKOFF: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));

/// Copies the finished render at `source` into the store (a mock run
/// stores the mock MP4 instead), and announces it: the `render.url`
/// artifact names the copy's URL. `Err`: park for another attempt, or fail
/// with `assets.copy_failed` after [`STORE_ATTEMPTS`].
pub(super) async fn copy(step: &mut Step<'_>, persona: Persona, source: &str) -> Result<RenderAsset, Outcome> {
    let assets = step.engine.assets.clone();
    let Some(key) = AssetKey::render(&step.request.project, &step.run_id, step.state.render_attempt) else {
        let why = format!(
            "project {:?} and run {:?} cannot name an asset",
            step.request.project, step.run_id
        );
        return Err(fail(persona, "assets.copy_failed", why));
    };
    let span = tracing::info_span!("assets.copy", run_id = %step.run_id, key = %key);
    let copied = tracing::Instrument::instrument(
        async {
            let bytes = match step.request.providers_mode {
                ProviderMode::Mock => assets
                    .put_bytes(&key, Bytes::from_static(RENDER_MP4))
                    .await
                    .map(|()| RENDER_MP4.len() as u64)?,
                ProviderMode::Live => assets.put_from_url(&key, source).await?,
            };
            Ok::<_, AssetError>((bytes, assets.url_for(&key, assets.url_ttl()).await?))
        },
        span,
    )
    .await;
    let render = step.state.render.as_mut().expect("a copy follows the render");
    let (bytes, url) = match copied {
        Ok(copied) => copied,
        Err(err) => {
            render.copies += 1;
            tracing::warn!(runId = %step.run_id, key = %key, attempt = render.copies, error = %err, "copying the render failed");
            let message = format!(
                "the rendered video could not be copied into the asset store ({err}); retry the run to copy it again: mw runs retry {}",
                step.run_id
            );
            return Err(again_or_fail(
                render.copies,
                persona,
                "assets.copy_failed",
                message,
                "asset_copy",
            ));
        }
    };
    let asset = RenderAsset {
        key: key.to_string(),
        url: url.clone(),
    };
    render.asset = Some(asset.clone());
    render.copies = 0;
    let render_id = render.id.clone();
    tracing::info!(runId = %step.run_id, key = %key, bytes, "render copied into the asset store");
    step.emit(
        EventKind::ArtifactCreated,
        json!({"kind": "render.url", "persona": persona, "data": {
            "url": url, "renderId": render_id, "assetKey": key.as_str(), "sourceUrl": source, "bytes": bytes,
        }}),
    );
    Ok(asset)
}

/// Another attempt after a backoff, or the run's failure once
/// [`STORE_ATTEMPTS`] were made.
fn again_or_fail(attempts: u32, persona: Persona, code: &str, message: String, waiting_for: &str) -> Outcome {
    if attempts >= STORE_ATTEMPTS {
        return fail(persona, code, message);
    }
    Outcome::Park {
        wait: json!({"for": waiting_for}),
        wake_at: Some(Utc::now() + STORE_BACKOFF.after(attempts.into())),
    }
}

/// The URL Quinn publishes, checked first: the render's copy must still be
/// in the store (a missing one fails the step with `assets.missing`, and a
/// retry renders again). After such a retry the run has no render: it is
/// made again here, on Quinn's behalf. A run without Alex publishes its
/// first clip; a render from before the asset store, Shotstack's URL.
pub(super) async fn video_to_publish(
    step: &mut Step<'_>,
    providers: &Providers,
) -> Result<Result<String, Outcome>, StepError> {
    if step.state.render.is_none() && step.request.graph_spec.pipeline.contains(&Persona::Alex) {
        if let Err(outcome) = super::alex::rendered(step, providers, Persona::Quinn).await? {
            return Ok(Err(outcome));
        }
    }
    let Some(render) = step.state.render.clone() else {
        return Ok(Ok(step
            .state
            .clips
            .first()
            .and_then(|c| c.url.clone())
            .unwrap_or_default()));
    };
    let Some(asset) = render.asset else {
        return Ok(Ok(render.url.unwrap_or_default()));
    };
    let assets = step.engine.assets.clone();
    let Some(key) = AssetKey::parse(&asset.key) else {
        return Ok(Err(missing(step, &asset.key)));
    };
    let checked = match assets.head(&key).await {
        Ok(Some(_)) => assets.url_for(&key, assets.url_ttl()).await.map(Some),
        Ok(None) => Ok(None),
        Err(err) => Err(err),
    };
    Ok(match checked {
        Ok(Some(url)) => Ok(url),
        Ok(None) => Err(missing(step, &asset.key)),
        Err(err) => {
            let render = step.state.render.as_mut().expect("read above");
            render.checks += 1;
            tracing::warn!(runId = %step.run_id, key = %asset.key, attempt = render.checks, error = %err, "checking the render's copy failed");
            let message = format!(
                "the asset store could not be read before publishing ({err}); retry the run: mw runs retry {}",
                step.run_id
            );
            Err(again_or_fail(
                render.checks,
                Persona::Quinn,
                "assets.unavailable",
                message,
                "asset_check",
            ))
        }
    })
}

fn missing(step: &Step<'_>, key: &str) -> Outcome {
    tracing::warn!(runId = %step.run_id, key, "the render's copy is gone from the asset store");
    fail(
        Persona::Quinn,
        "assets.missing",
        format!(
            "the rendered video is gone from storage; retry the run to render it again: mw runs retry {}",
            step.run_id
        ),
    )
}
