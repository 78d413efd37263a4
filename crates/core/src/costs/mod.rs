//! What runs cost. Money is integer micro-dollars (`i64`, 1 USD =
//! 1,000,000) in code and storage; JSON shows USD as a number rounded to 6
//! decimals ([`usd`]). The [`PriceTable`] prices every paid provider
//! operation and every LLM model's tokens: its defaults (`defaults.toml`)
//! come from the providers' public price lists (sources in
//! docs/operations.md, "Costs"), and `PRICES_FILE` overrides them key by
//! key. A paid call becomes a [`Charge`]; [`PriceTable::estimate`] is a
//! run's expected cost from its project's pipeline.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::project::{Persona, ProjectSpec};

pub mod limits;

pub const MICROS_PER_USD: i64 = 1_000_000;

/// The providers a cost is recorded under, as `byProvider` lists them.
pub const PROVIDERS: [&str; 4] = ["kieai", "shotstack", "upload_post", "openai"];

/// The kie.ai model every clip is generated with (the live client asks for it).
pub const KIEAI_MODEL: &str = "veo3_fast";

/// The default table, in the format of `PRICES_FILE`.
pub const DEFAULTS: &str = include_str!("defaults.toml");

/// `micros` in USD, rounded to 6 decimals (the nearest `f64`, which JSON
/// prints as the 6-decimal figure: 1,250,000 is `1.25`).
pub fn usd(micros: i64) -> f64 {
    micros as f64 / MICROS_PER_USD as f64
}

/// USD in micro-dollars, to the nearest.
pub fn micros(usd: f64) -> i64 {
    (usd * MICROS_PER_USD as f64).round() as i64
}

/// An LLM model's price, in micro-dollars per 1M tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenPrice {
    pub input_per_million: i64,
    pub output_per_million: i64,
}

/// How much LLM work the estimate counts per persona of a pipeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LlmAllowance {
    pub requests_per_persona: u32,
    /// Per request.
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// The price of every paid call, in micro-dollars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceTable {
    /// kie.ai, per submitted clip, by model.
    pub kieai_clip: BTreeMap<String, i64>,
    /// Shotstack, per rendered minute (counted by the second).
    pub shotstack_render_minute: i64,
    /// Upload-Post, per publish.
    pub upload_post_publish: i64,
    /// LLM models by name.
    pub llm: BTreeMap<String, TokenPrice>,
    /// A model `llm` does not list.
    pub llm_other: TokenPrice,
    pub llm_allowance: LlmAllowance,
}

/// One paid call, priced: what the orchestrator's `spend` table keeps and
/// its `cost.recorded` event tells the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Charge {
    /// One of [`PROVIDERS`].
    pub provider: String,
    /// `submit` (a clip), `render`, `publish`, `completion` (an LLM request).
    pub operation: String,
    /// The kie.ai or LLM model.
    pub model: Option<String>,
    /// Clips, rendered minutes, publishes, or an LLM request's tokens.
    pub units: f64,
    pub usd_micros: i64,
}

/// A run's expected cost, by provider (every one of [`PROVIDERS`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Estimate {
    pub by_provider: BTreeMap<&'static str, i64>,
}

impl Estimate {
    pub fn total(&self) -> i64 {
        self.by_provider.values().sum()
    }
}

impl Default for PriceTable {
    /// The defaults of `defaults.toml`.
    fn default() -> PriceTable {
        let mut table = PriceTable {
            kieai_clip: BTreeMap::new(),
            shotstack_render_minute: 0,
            upload_post_publish: 0,
            llm: BTreeMap::new(),
            llm_other: TokenPrice::default(),
            llm_allowance: LlmAllowance::default(),
        };
        table.apply(parse(DEFAULTS).expect("the default price table parses"));
        table
    }
}

impl PriceTable {
    /// The defaults with what `text` (a `PRICES_FILE`) sets instead. An
    /// unknown key, a negative price or a malformed file is an error that
    /// names the key or the line.
    pub fn from_toml(text: &str) -> Result<PriceTable, String> {
        let mut table = PriceTable::default();
        table.apply(parse(text)?);
        Ok(table)
    }

    fn apply(&mut self, file: PriceFile) {
        let PriceFile {
            kieai,
            shotstack,
            upload_post,
            openai,
        } = file;
        for (model, price) in kieai.clip {
            self.kieai_clip.insert(model, price.0);
        }
        if let Some(price) = shotstack.render_minute {
            self.shotstack_render_minute = price.0;
        }
        if let Some(price) = upload_post.publish {
            self.upload_post_publish = price.0;
        }
        for (model, price) in openai.models {
            self.llm.insert(model, price.into());
        }
        if let Some(price) = openai.other {
            self.llm_other = price.into();
        }
        let allowance = &mut self.llm_allowance;
        let file = openai.allowance;
        allowance.requests_per_persona = file.requests_per_persona.unwrap_or(allowance.requests_per_persona);
        allowance.input_tokens = file.input_tokens.unwrap_or(allowance.input_tokens);
        allowance.output_tokens = file.output_tokens.unwrap_or(allowance.output_tokens);
    }

    /// An LLM model's price; one the table does not list costs `llm_other`.
    pub fn llm_price(&self, model: &str) -> TokenPrice {
        self.llm.get(model).copied().unwrap_or(self.llm_other)
    }

    /// Whether the table lists `model` (else it is priced as `openai.other`).
    pub fn knows_llm(&self, model: &str) -> bool {
        self.llm.contains_key(model)
    }

    /// A submitted kie.ai clip; a model the table does not list costs as
    /// much as its dearest one.
    pub fn clip(&self, model: &str) -> Charge {
        let price = self
            .kieai_clip
            .get(model)
            .or_else(|| self.kieai_clip.values().max())
            .copied()
            .unwrap_or_default();
        charge("kieai", "submit", Some(model), 1.0, price)
    }

    /// A Shotstack render of `seconds` of video, billed by the second.
    pub fn render(&self, seconds: f64) -> Charge {
        let seconds = seconds.max(0.0);
        let micros = (self.shotstack_render_minute as f64 * seconds / 60.0).round() as i64;
        let minutes = (seconds / 60.0 * 1e6).round() / 1e6;
        charge("shotstack", "render", None, minutes, micros)
    }

    /// An Upload-Post publish.
    pub fn publish(&self) -> Charge {
        charge("upload_post", "publish", None, 1.0, self.upload_post_publish)
    }

    /// One LLM request of `model` with its token counts.
    pub fn llm_request(&self, model: &str, input_tokens: u64, output_tokens: u64) -> Charge {
        let price = self.llm_price(model);
        let per_million = i128::from(input_tokens) * i128::from(price.input_per_million)
            + i128::from(output_tokens) * i128::from(price.output_per_million);
        // To the nearest micro-dollar, halves up.
        let micros = (per_million + 500_000) / 1_000_000;
        let tokens = input_tokens.saturating_add(output_tokens);
        charge(
            "openai",
            "completion",
            Some(model),
            tokens as f64,
            i64::try_from(micros).unwrap_or(i64::MAX),
        )
    }

    /// A run's expected cost from its project: the pipeline's clips, render
    /// and publish, and, when the personas use an LLM (`llm_model`), the
    /// allowance per persona. Retries of failed clips are not expected.
    pub fn estimate(&self, spec: &ProjectSpec, llm_model: Option<&str>) -> Estimate {
        self.estimate_pipeline(spec, &spec.workflow, llm_model)
    }

    /// [`Self::estimate`] for `pipeline` (the project's workflow less the
    /// personas a run skips).
    pub fn estimate_pipeline(&self, spec: &ProjectSpec, pipeline: &[Persona], llm_model: Option<&str>) -> Estimate {
        let mut by_provider: BTreeMap<&'static str, i64> = PROVIDERS.iter().map(|p| (*p, 0)).collect();
        let mut add = |charge: Charge, times: u64| {
            let provider = PROVIDERS
                .iter()
                .find(|p| **p == charge.provider)
                .expect("charges name known providers");
            *by_provider.entry(provider).or_default() += charge.usd_micros.saturating_mul(times as i64);
        };
        for persona in pipeline {
            match persona {
                Persona::Riley => add(self.clip(KIEAI_MODEL), u64::from(spec.video_count())),
                Persona::Alex => add(self.render(render_seconds(spec)), 1),
                Persona::Quinn => add(self.publish(), 1),
                Persona::Iggy | Persona::Brendan => {}
            }
            if let (Some(model), true) = (llm_model, *persona != Persona::Brendan) {
                let allowance = self.llm_allowance;
                let request = self.llm_request(model, allowance.input_tokens, allowance.output_tokens);
                add(request, u64::from(allowance.requests_per_persona));
            }
        }
        Estimate { by_provider }
    }
}

/// The length of a project's render: its clips end to end.
pub fn render_seconds(spec: &ProjectSpec) -> f64 {
    spec.specs
        .as_ref()
        .map_or(0.0, |s| f64::from(s.video_count) * s.clip_duration_seconds)
}

fn charge(provider: &str, operation: &str, model: Option<&str>, units: f64, usd_micros: i64) -> Charge {
    Charge {
        provider: provider.into(),
        operation: operation.into(),
        model: model.map(str::to_owned),
        units,
        usd_micros,
    }
}

/// A price in USD as written (`0.40`, `2`), kept in micro-dollars.
#[derive(Debug, Clone, Copy)]
struct Usd(i64);

impl<'de> Deserialize<'de> for Usd {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Usd, D::Error> {
        use serde::de::Error;
        let value = f64::deserialize(deserializer)?;
        if !(0.0..=1_000_000.0).contains(&value) {
            return Err(D::Error::custom(format!(
                "a price must be between 0 and 1000000 USD, got {value}"
            )));
        }
        Ok(Usd(micros(value)))
    }
}

/// `PRICES_FILE` (and `defaults.toml`): every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    #[serde(default)]
    kieai: KieAiFile,
    #[serde(default)]
    shotstack: ShotstackFile,
    #[serde(default)]
    upload_post: UploadPostFile,
    #[serde(default)]
    openai: OpenAiFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KieAiFile {
    #[serde(default)]
    clip: BTreeMap<String, Usd>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShotstackFile {
    render_minute: Option<Usd>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadPostFile {
    publish: Option<Usd>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenAiFile {
    #[serde(default)]
    models: BTreeMap<String, TokenPriceFile>,
    other: Option<TokenPriceFile>,
    #[serde(default)]
    allowance: AllowanceFile,
}

/// USD per 1M tokens.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenPriceFile {
    input: Usd,
    output: Usd,
}

impl From<TokenPriceFile> for TokenPrice {
    fn from(file: TokenPriceFile) -> TokenPrice {
        TokenPrice {
            input_per_million: file.input.0,
            output_per_million: file.output.0,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowanceFile {
    requests_per_persona: Option<u32>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
}

fn parse(text: &str) -> Result<PriceFile, String> {
    toml::from_str(text).map_err(|err| {
        let line = err.span().map(|span| text[..span.start].matches('\n').count() + 1);
        let at = line.map(|l| format!(" (line {l})")).unwrap_or_default();
        format!("{}{at}", err.message().trim())
    })
}

#[cfg(test)]
mod tests;
