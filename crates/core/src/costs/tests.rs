use super::*;

fn spec(workflow: &str, videos: u32, seconds: f64) -> ProjectSpec {
    let text = format!(
        r##"
project = "demo"
title = "Demo"
description = "A demo."
workflow = {workflow}

[specs]
videoCount = {videos}
clipDurationSeconds = {seconds:.1}
aspectRatio = "9:16"
resolution = "1080x1920"
overlay = {{ position = "top", color = "#FFFFFF", background = "#000000AA" }}

[publish]
platforms = ["tiktok"]
"##
    );
    ProjectSpec::parse(std::path::Path::new("demo.toml"), &text).unwrap()
}

#[test]
fn the_defaults_price_every_operation() {
    let table = PriceTable::default();
    assert_eq!(table.clip(KIEAI_MODEL).usd_micros, 400_000);
    assert_eq!(table.kieai_clip["veo3"], 1_000_000);
    assert_eq!(table.shotstack_render_minute, 300_000);
    assert_eq!(table.upload_post_publish, 600_000);
    assert_eq!(
        table.llm_price("gpt-4o-mini"),
        TokenPrice {
            input_per_million: 150_000,
            output_per_million: 600_000
        }
    );
    assert_eq!(table.llm_price("some-new-model"), table.llm_price("gpt-4o"));
    assert!(table.knows_llm("gpt-4o-mini") && !table.knows_llm("some-new-model"));
    assert_eq!(
        table.llm_allowance,
        LlmAllowance {
            requests_per_persona: 3,
            input_tokens: 6000,
            output_tokens: 1000
        }
    );
}

#[test]
fn charges_are_priced_in_micro_dollars() {
    let table = PriceTable::default();
    // 96 s at $0.30 a minute, by the second.
    let render = table.render(96.0);
    assert_eq!((render.usd_micros, render.units), (480_000, 1.6));
    assert_eq!(table.render(1.0).usd_micros, 5_000);
    // 1,000 input and 500 output tokens of gpt-4o-mini: 150 + 300 µ$.
    let request = table.llm_request("gpt-4o-mini", 1000, 500);
    assert_eq!((request.usd_micros, request.units), (450, 1500.0));
    assert_eq!(request.model.as_deref(), Some("gpt-4o-mini"));
    // Fractions of a micro-dollar round to the nearest, halves up.
    assert_eq!(table.llm_request("gpt-4o-mini", 3, 0).usd_micros, 0);
    assert_eq!(table.llm_request("gpt-4o-mini", 4, 0).usd_micros, 1);
    let clip = table.clip("veo3");
    assert_eq!(
        (clip.provider.as_str(), clip.operation.as_str(), clip.usd_micros),
        ("kieai", "submit", 1_000_000)
    );
    assert_eq!(
        table.clip("veo9").usd_micros,
        1_000_000,
        "an unknown model costs the dearest"
    );
    assert_eq!(table.publish().provider, "upload_post");
}

#[test]
fn usd_is_shown_to_six_decimals() {
    assert_eq!(serde_json::to_string(&usd(1_250_000)).unwrap(), "1.25");
    assert_eq!(serde_json::to_string(&usd(123)).unwrap(), "0.000123");
    assert_eq!(serde_json::to_string(&usd(0)).unwrap(), "0.0");
    assert_eq!(micros(0.4), 400_000);
    assert_eq!(micros(usd(987_654_321)), 987_654_321);
}

#[test]
fn a_prices_file_overrides_key_by_key() {
    let table = PriceTable::from_toml(
        "[kieai.clip]\nveo3_fast = 0.3\n[upload_post]\npublish = 0\n\
         [openai.models.\"gpt-4.1\"]\ninput = 2\noutput = 8\n[openai.allowance]\ninput_tokens = 100\n",
    )
    .unwrap();
    let defaults = PriceTable::default();
    assert_eq!(table.kieai_clip["veo3_fast"], 300_000);
    assert_eq!(table.kieai_clip["veo3"], defaults.kieai_clip["veo3"]);
    assert_eq!(table.upload_post_publish, 0);
    assert_eq!(table.shotstack_render_minute, defaults.shotstack_render_minute);
    assert_eq!(table.llm_price("gpt-4.1").output_per_million, 8_000_000);
    assert_eq!(table.llm_price("gpt-4o-mini"), defaults.llm_price("gpt-4o-mini"));
    assert_eq!(table.llm_allowance.input_tokens, 100);
    assert_eq!(table.llm_allowance.requests_per_persona, 3);
    assert_eq!(PriceTable::from_toml("").unwrap(), defaults);
    assert_eq!(PriceTable::from_toml(DEFAULTS).unwrap(), defaults);
}

#[test]
fn unknown_keys_and_bad_prices_are_errors_naming_them() {
    let unknown = PriceTable::from_toml("[shotstack]\nrender_minute = 0.3\nper_render = 1\n").unwrap_err();
    assert!(
        unknown.contains("per_render") && unknown.contains("(line "),
        "{unknown}"
    );
    let section = PriceTable::from_toml("[runway]\nclip = 1\n").unwrap_err();
    assert!(section.contains("runway"), "{section}");
    let negative = PriceTable::from_toml("[upload_post]\npublish = -1\n").unwrap_err();
    assert!(negative.contains("between 0 and"), "{negative}");
    let half = PriceTable::from_toml("[openai.models.x]\ninput = 1\n").unwrap_err();
    assert!(half.contains("output"), "{half}");
    assert!(PriceTable::from_toml("[kieai.clip]\nveo3 = \"cheap\"\n").is_err());
}

#[test]
fn the_estimate_follows_the_pipeline() {
    let table = PriceTable::default();
    let aismr = spec(r#"["iggy", "riley", "alex", "quinn"]"#, 12, 8.0);
    let scripted = table.estimate(&aismr, None);
    assert_eq!(scripted.by_provider["kieai"], 12 * 400_000);
    assert_eq!(scripted.by_provider["shotstack"], 480_000);
    assert_eq!(scripted.by_provider["upload_post"], 600_000);
    assert_eq!(scripted.by_provider["openai"], 0, "scripted personas use no LLM");
    assert_eq!(scripted.total(), 4_800_000 + 480_000 + 600_000);

    // gpt-4o-mini: 3 requests × (6,000 × 0.15 + 1,000 × 0.60) µ$/token-million = 4,500 µ$ per persona.
    let llm = table.estimate(&aismr, Some("gpt-4o-mini"));
    assert_eq!(llm.by_provider["openai"], 4 * 4_500);
    assert_eq!(llm.total(), scripted.total() + 18_000);

    let no_edit = table.estimate_pipeline(&aismr, &[Persona::Iggy, Persona::Riley, Persona::Quinn], None);
    assert_eq!(no_edit.by_provider["shotstack"], 0);
    assert_eq!(no_edit.by_provider["upload_post"], 600_000);
    assert_eq!(PROVIDERS.len(), no_edit.by_provider.len(), "every provider is listed");
}
