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
