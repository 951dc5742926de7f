//! The fuzz target's property on stable: mutations of real runbooks never
//! panic the loader, and every runbook it accepts prints back to itself.

use proptest::prelude::*;

const SEEDS: [&str; 1] = [nodewarden::runbook::DEFAULT_YAML];

#[derive(Debug, Clone)]
enum Mutation {
    DeleteLine(usize),
    DuplicateLine(usize),
    ReplaceChar(usize, char),
    InsertToken(usize, &'static str),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let tokens = prop::sample::select(vec![
        "&a",
        "*a",
        "<<: *a",
        "[",
        "]",
        "{",
        "}",
        ": ",
        "- ",
        "\t",
        "~",
        "-1s",
        "99999d",
        "0",
        "\"",
        "'",
        "!!binary ",
        "? ",
        "|",
        ">",
        "#",
        "\u{0}",
        "\u{feff}",
        "---\n",
        "...\n",
    ]);
    prop_oneof![
        (0usize..200).prop_map(Mutation::DeleteLine),
        (0usize..200).prop_map(Mutation::DuplicateLine),
        (0usize..8000, any::<char>()).prop_map(|(i, c)| Mutation::ReplaceChar(i, c)),
        (0usize..8000, tokens).prop_map(|(i, t)| Mutation::InsertToken(i, t)),
        (0usize..8000).prop_map(Mutation::Truncate),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    let clamp = |i: usize, n: usize| if n == 0 { 0 } else { i % n };
    let mut chars: Vec<char> = text.chars().collect();
    match m {
        Mutation::DeleteLine(i) => {
            if !lines.is_empty() {
                let i = clamp(*i, lines.len());
                lines.remove(i);
            }
            lines.join("\n")
        }
        Mutation::DuplicateLine(i) => {
            if !lines.is_empty() {
                let i = clamp(*i, lines.len());
                lines.insert(i, lines[i]);
            }
            lines.join("\n")
        }
        Mutation::ReplaceChar(i, c) => {
            if !chars.is_empty() {
                let i = clamp(*i, chars.len());
                chars[i] = *c;
            }
            chars.into_iter().collect()
        }
        Mutation::InsertToken(i, t) => {
            let i = clamp(*i, chars.len() + 1);
            let mut s: String = chars[..i].iter().collect();
            s.push_str(t);
            s.extend(&chars[i..]);
            s
        }
        Mutation::Truncate(i) => chars[..clamp(*i, chars.len() + 1)].iter().collect(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]
    #[test]
    fn mutated_runbooks_never_panic(seed in prop::sample::select(SEEDS.to_vec()),
                                    muts in prop::collection::vec(mutation(), 1..6)) {
        let mut text = seed.to_string();
        for m in &muts {
            text = apply(&text, m);
        }
        match nodewarden::runbook::parse("fuzz.yaml", &text) {
            Ok(l) => {
                let shown = nodewarden::runbook::to_yaml(&l.runbook);
                let again = nodewarden::runbook::parse("shown.yaml", &shown);
                prop_assert!(again.is_ok(), "show output did not validate: {:?}\n{shown}", again.err());
                prop_assert_eq!(again.unwrap().runbook, l.runbook);
            }
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(msg.starts_with("fuzz.yaml"), "{msg}");
            }
        }
    }
}

#[test]
fn fuzz_corpus_seeds_are_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/runbook");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        nodewarden::runbook::load_file(&p).unwrap_or_else(|e| panic!("{e}"));
        n += 1;
    }
    assert!(n >= 2);
}

/// A duration from 1 ns to days, written the many ways an operator might.
fn any_duration() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..2000).prop_map(|n| format!("{n}ns")),
        (0u64..2000).prop_map(|n| format!("{n}us")),
        (0u64..5000).prop_map(|n| format!("{n}ms")),
        (0u64..100, 0u64..1000).prop_map(|(s, f)| format!("{s}.{f:03}s")),
        (0u64..100, 0u64..1000).prop_map(|(s, f)| format!("{s}.{f}ms")),
        (0u64..200).prop_map(|n| format!("{n}s")),
        (0u64..120).prop_map(|n| format!("{n}m")),
        (0u64..48, 0u64..60).prop_map(|(h, m)| format!("{h}h{m}m")),
        (0u64..10).prop_map(|n| format!("{n}d")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]
    /// show → validate holds for every valid runbook: each duration of the
    /// default runbook replaced by an arbitrary one; whatever validates must
    /// print back to a runbook that validates to the same thing.
    #[test]
    fn every_valid_runbook_survives_show_then_validate(
        durs in prop::collection::vec(any_duration(), 40),
        picks in prop::collection::vec(prop::bool::weighted(0.12), 40),
    ) {
        let seed = nodewarden::runbook::DEFAULT_YAML;
        let mut out = String::new();
        let mut k = 0;
        for line in seed.lines() {
            let t = line.trim_end();
            let dur_at = t.rfind(": ").filter(|&i| {
                let v = t[i + 2..].split('#').next().unwrap_or("").trim();
                !v.is_empty() && v.parse::<nodewarden::domain::Dur>().is_ok() && v != "0"
            });
            match dur_at {
                Some(i) if picks[k % picks.len()] => {
                    out.push_str(&t[..i + 2]);
                    out.push_str(&durs[k % durs.len()]);
                    k += 1;
                }
                Some(_) => {
                    out.push_str(t);
                    k += 1;
                }
                None => out.push_str(t),
            }
            out.push('\n');
        }
        if let Ok(l) = nodewarden::runbook::parse("gen.yaml", &out) {
            let shown = nodewarden::runbook::to_yaml(&l.runbook);
            let again = nodewarden::runbook::parse("shown.yaml", &shown);
            prop_assert!(again.is_ok(), "show output did not validate: {:?}\n{shown}", again.err());
            let again = again.unwrap();
            prop_assert_eq!(&again.runbook, &l.runbook);
            prop_assert_eq!(nodewarden::runbook::to_yaml(&again.runbook), shown);
        }
    }
}

#[test]
fn sub_millisecond_durations_are_refused_with_a_reason() {
    let text = nodewarden::runbook::DEFAULT_YAML.replacen("okFor: 1m", "okFor: 1ns", 1);
    let e = nodewarden::runbook::parse("r.yaml", &text)
        .unwrap_err()
        .to_string();
    assert!(e.contains("finer than a millisecond"), "{e}");
}
