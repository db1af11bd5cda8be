//! Loading never panics: every flow of the test corpus and of the specification's examples,
//! mutated in many small ways (deleted spans, inserted YAML indicators, swapped and duplicated
//! lines, truncation), must come back as a flow or as diagnostics with valid positions.

use std::path::{Path, PathBuf};

use baton_flow::{ValidateOptions, load_flow};

/// Mutants per corpus file. Deterministic: a failure reproduces with the same seed.
const MUTANTS_PER_FILE: usize = 64;

const TOKENS: [&str; 32] = [
    ":",
    ": ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    "&a ",
    "*a",
    "!!int ",
    "!x ",
    "'",
    "\"",
    "#",
    "\n",
    "\t",
    "  ",
    "${",
    "${ .",
    "|",
    ">-\n",
    "? ",
    ",",
    "\u{feff}",
    "é",
    "\0",
    "---\n",
    "...\n",
    "~",
    ".nan",
    "0x",
    "then: x\n",
];

/// xorshift64*: small, deterministic, good enough to pick edits.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn mutate(text: &str, rng: &mut Rng) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(chars.len() + 1);
        match rng.below(5) {
            0 => {
                let end = (at + 1 + rng.below(10)).min(chars.len());
                chars.drain(at..end.max(at));
            }
            1 | 2 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                chars.splice(at..at, token.chars());
            }
            3 => {
                let s: String = chars.iter().collect();
                let mut lines: Vec<&str> = s.lines().collect();
                if lines.len() > 1 {
                    let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
                    if rng.below(2) == 0 {
                        lines.swap(a, b);
                    } else {
                        lines.insert(a, lines[b]);
                    }
                }
                chars = lines.join("\n").chars().collect();
            }
            _ => chars.truncate(at),
        }
    }
    chars.into_iter().collect()
}

fn corpus() -> Vec<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let standards = std::env::var_os("BATON_STANDARDS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../../shared/standards"));
    let mut out = Vec::new();
    for dir in [
        manifest.join("tests/data"),
        manifest.join("tests/data/broken"),
        manifest.join("tests/data/good"),
        standards.join("sw-spec/examples"),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if matches!(
                p.extension().and_then(|x| x.to_str()),
                Some("yaml" | "json")
            ) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn mutated_flows_never_panic() {
    let files = corpus();
    assert!(files.len() >= 20, "corpus too small: {files:?}");
    let opts = ValidateOptions {
        known_functions: vec!["noop".into(), "provider".into()],
    };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut loaded = 0usize;
    let mut rejected = 0usize;
    for path in &files {
        let text = std::fs::read_to_string(path).expect("read corpus file");
        for _ in 0..MUTANTS_PER_FILE {
            let mutant = mutate(&text, &mut rng);
            match load_flow(&mutant, &opts) {
                Ok(_) => loaded += 1,
                Err(diags) => {
                    rejected += 1;
                    assert!(
                        !diags.is_empty(),
                        "an error without diagnostics for:\n{mutant}"
                    );
                    for d in &diags {
                        assert!(
                            d.line >= 1 && d.column >= 1,
                            "bad position {d:?} for:\n{mutant}"
                        );
                        assert!(d.code.starts_with("BATON-FLOW-"), "{d:?}");
                        // The parser's panic guard is a last resort; the corpus must not need it.
                        assert_ne!(
                            d.message, "the YAML parser failed on this input",
                            "for:\n{mutant}"
                        );
                    }
                }
            }
        }
    }
    // Mutations that keep a flow valid are common (comments, blank lines); both outcomes occur.
    assert!(
        loaded > 0 && rejected > 0,
        "loaded {loaded}, rejected {rejected}"
    );
}
