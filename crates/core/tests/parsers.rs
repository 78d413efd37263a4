//! Property tests of the parsers that read what callers send: HITL link
//! tokens (`{exp}.{hex}`), callback tokens, kie.ai
//! signatures, run ids, statuses, gates and graphs. None may panic on any
//! input, and no mutated, truncated or empty signature is ever accepted.

use myloware_core::project::Persona;
use myloware_core::run::{Gate, RunStatus};
use myloware_core::signing::{
    SignatureError, WEBHOOK_TOLERANCE_SECS, callback_token, hitl_token, kieai_signature, verify_callback_token,
    verify_hitl_token, verify_kieai,
};
use myloware_core::wire::GraphSpec;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(256)
}

/// Any text, biased towards the characters tokens are made of.
fn texty() -> impl Strategy<Value = String> {
    prop_oneof![
        ".*",
        "[0-9a-fA-F.=+/ -]{0,80}",
        "-?[0-9]{1,20}\\.[0-9a-f]{0,70}",
        Just(String::new()),
    ]
}

fn secret() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..80)
}

/// `token` with the character at `at` replaced by `with`, unless that
/// leaves it unchanged.
fn replace_char(token: &str, at: usize, with: char) -> Option<String> {
    let chars: Vec<char> = token.chars().collect();
    let at = at % chars.len();
    if chars[at] == with {
        return None;
    }
    let mut mutated = chars;
    mutated[at] = with;
    Some(mutated.into_iter().collect())
}

/// Hex is read case-insensitively and tokens are trimmed: a mutation that
/// only changes the case of a hex digit is the same signature.
fn same_signature(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn hitl_tokens_never_panic(token in texty(), run in ".{0,40}", gate in ".{0,20}", now in any::<i64>(), secret in secret()) {
        let _ = verify_hitl_token(&[&secret], &run, &gate, &token, now);
    }

    #[test]
    fn hitl_tokens_verify_until_they_expire(
        secret in secret(), run in "run_[a-z0-9]{12}", gate in prop::sample::select(vec!["workflow", "ideate", "prepublish"]),
        exp in 0i64..4_000_000_000, offset in -100_000i64..100_000,
    ) {
        let token = hitl_token(&secret, &run, gate, exp);
        let prefix = format!("{exp}.");
        prop_assert!(token.starts_with(&prefix));
        let now = exp + offset;
        prop_assert_eq!(verify_hitl_token(&[&secret], &run, gate, &token, now), now <= exp);
        // Under rotation, the previous secret still verifies.
        prop_assert_eq!(verify_hitl_token(&[b"new secret", &secret], &run, gate, &token, now), now <= exp);
    }

    #[test]
    fn mutated_hitl_tokens_are_refused(
        secret in secret(), run in "run_[a-z0-9]{12}", exp in 1_000_000_000i64..4_000_000_000,
        at in any::<usize>(), with in any::<char>(),
    ) {
        let token = hitl_token(&secret, &run, "ideate", exp);
        let Some(mutated) = replace_char(&token, at, with) else { return Ok(()) };
        prop_assume!(!same_signature(&mutated, &token));
        prop_assert!(!verify_hitl_token(&[&secret], &run, "ideate", &mutated, 0), "{mutated:?} accepted");
    }

    #[test]
    fn truncated_extended_and_rebound_hitl_tokens_are_refused(
        secret in secret(), other in secret(), run in "run_[a-z0-9]{12}", exp in 1_000_000_000i64..4_000_000_000,
        cut in any::<usize>(), tail in "[0-9a-f]{1,8}",
    ) {
        let token = hitl_token(&secret, &run, "ideate", exp);
        let cut = cut % token.len();
        prop_assert!(!verify_hitl_token(&[&secret], &run, "ideate", &token[..cut], 0), "prefix {:?}", &token[..cut]);
        let extended = format!("{token}{tail}");
        prop_assert!(!verify_hitl_token(&[&secret], &run, "ideate", &extended, 0));
        prop_assert!(!verify_hitl_token(&[&secret], &run, "prepublish", &token, 0), "other gate");
        let other_run = format!("{run}x");
        prop_assert!(!verify_hitl_token(&[&secret], &other_run, "ideate", &token, 0), "other run");
        prop_assert!(!verify_hitl_token(&[], &run, "ideate", &token, 0), "no secret");
        prop_assume!(other != secret);
        prop_assert!(!verify_hitl_token(&[&other], &run, "ideate", &token, 0), "other secret");
        // The expiry is signed: moving it invalidates the token.
        let (_, sig) = token.split_once('.').expect("exp.sig");
        let moved = format!("{}.{sig}", exp + 1);
        prop_assert!(!verify_hitl_token(&[&secret], &run, "ideate", &moved, 0));
    }

    #[test]
    fn random_hitl_tokens_are_refused(secret in secret(), token in texty(), now in any::<i64>()) {
        prop_assert!(!verify_hitl_token(&[&secret], "run_abcdefabcdef", "ideate", &token, now));
    }

    #[test]
    fn callback_tokens_never_panic_and_refuse_anything_else(
        secret in secret(), run in ".{0,30}", purpose in ".{0,12}", token in texty(),
    ) {
        let good = callback_token(&secret, &run, &purpose);
        let verified = verify_callback_token(&[&secret], &run, &purpose, &token);
        prop_assert_eq!(verified, same_signature(&token, &good) && token.trim() == token);
    }

    #[test]
    fn mutated_or_truncated_callback_tokens_are_refused(
        secret in secret(), run in "run_[a-z0-9]{12}", index in 0u32..50, at in any::<usize>(), with in any::<char>(),
        cut in any::<usize>(),
    ) {
        let purpose = format!("clip:{index}");
        let token = callback_token(&secret, &run, &purpose);
        prop_assert!(verify_callback_token(&[&secret], &run, &purpose, &token));
        prop_assert!(!verify_callback_token(&[&secret], &run, &purpose, ""));
        prop_assert!(!verify_callback_token(&[&secret], &run, &purpose, &token[..cut % token.len()]));
        let next_clip = format!("clip:{}", index + 1);
        prop_assert!(!verify_callback_token(&[&secret], &run, &next_clip, &token));
        if let Some(mutated) = replace_char(&token, at, with) {
            prop_assume!(!same_signature(&mutated, &token));
            prop_assert!(!verify_callback_token(&[&secret], &run, &purpose, &mutated), "{mutated:?} accepted");
        }
    }

    #[test]
    fn kieai_signatures_never_panic(
        key in secret(), task in ".{0,40}", timestamp in proptest::option::of(texty()),
        signature in proptest::option::of(texty()), now in 0i64..4_000_000_000,
    ) {
        let _ = verify_kieai(&key, &task, timestamp.as_deref(), signature.as_deref(), now);
    }

    #[test]
    fn kieai_signatures_verify_within_the_tolerance_only(
        key in secret(), task in "[a-zA-Z0-9-]{1,40}", sent in 0i64..4_000_000_000,
        skew in -2 * WEBHOOK_TOLERANCE_SECS..2 * WEBHOOK_TOLERANCE_SECS,
    ) {
        let timestamp = sent.to_string();
        let signature = kieai_signature(&key, &task, &timestamp);
        let verdict = verify_kieai(&key, &task, Some(&timestamp), Some(&signature), sent + skew);
        if skew.abs() <= WEBHOOK_TOLERANCE_SECS {
            prop_assert_eq!(verdict, Ok(()));
        } else {
            prop_assert_eq!(verdict, Err(SignatureError::Stale));
        }
    }

    #[test]
    fn mutated_truncated_and_empty_kieai_signatures_are_refused(
        key in secret(), task in "[a-zA-Z0-9-]{1,40}", now in 1_000_000_000i64..4_000_000_000,
        at in any::<usize>(), with in any::<char>(), cut in any::<usize>(),
    ) {
        let timestamp = now.to_string();
        let signature = kieai_signature(&key, &task, &timestamp);
        let verify = |sig: &str| verify_kieai(&key, &task, Some(&timestamp), Some(sig), now);
        prop_assert!(verify("").is_err());
        prop_assert!(verify(&signature[..cut % signature.len()]).is_err());
        let extended = format!("{signature}AAAA");
        prop_assert!(verify(&extended).is_err());
        let other_task = format!("{task}x");
        prop_assert!(verify_kieai(&key, &other_task, Some(&timestamp), Some(&signature), now).is_err());
        if let Some(mutated) = replace_char(&signature, at, with) {
            // Base64 ignores nothing but surrounding whitespace (trimmed).
            prop_assume!(mutated.trim() != signature);
            prop_assert!(verify(&mutated).is_err(), "{mutated:?} accepted");
        }
    }

    #[test]
    fn run_ids_statuses_and_gates_parse_without_panicking(text in ".{0,80}") {
        let is_id = myloware_core::ids::is_run_id(&text);
        if is_id {
            prop_assert!(text.starts_with("run_") && text.len() <= 68 && text.is_ascii());
        }
        if let Ok(status) = text.parse::<RunStatus>() {
            prop_assert_eq!(status.as_str(), text.as_str());
        }
        if let Ok(gate) = text.parse::<Gate>() {
            prop_assert_eq!(gate.as_str(), text.as_str());
        }
    }

    #[test]
    fn any_graph_is_laid_out_or_refused_without_panicking(
        pipeline in proptest::collection::vec(prop::sample::select(Persona::ALL.to_vec()), 0..8),
        gates in proptest::collection::vec(prop::sample::select(Gate::ALL.to_vec()), 0..5),
    ) {
        let spec = GraphSpec { pipeline: pipeline.clone(), hitl_gates: gates };
        if let Ok(nodes) = myloware_core::graph::nodes(&spec) {
            // Every persona of the pipeline, in order, and nothing else.
            let personas: Vec<Persona> = nodes
                .iter()
                .filter_map(|n| match n {
                    myloware_core::graph::Node::Persona(p) => Some(*p),
                    myloware_core::graph::Node::Gate(_) => None,
                })
                .collect();
            prop_assert_eq!(personas, pipeline);
        }
    }
}

/// A timestamp far in the past or future is stale, whatever `now` is: the
/// distance between them must not overflow.
#[test]
fn extreme_kieai_timestamps_are_stale_not_a_panic() {
    let now = 1_700_000_000i64;
    for sent in [i64::MIN, i64::MIN + 1, now.wrapping_sub(i64::MIN), i64::MAX] {
        let timestamp = sent.to_string();
        let signature = kieai_signature(b"key", "task", &timestamp);
        let verdict =
            std::panic::catch_unwind(|| verify_kieai(b"key", "task", Some(&timestamp), Some(&signature), now))
                .map_err(|_| "panicked");
        assert_eq!(verdict, Ok(Err(SignatureError::Stale)), "timestamp {timestamp}");
    }
}
