//! Runs the DMN TCK from `BATON_STANDARDS_DIR` (default: the shared
//! standards folder beside the repository) and holds the pass counts to
//! their floors: counts only go up.

use std::path::PathBuf;

fn standards_dir() -> PathBuf {
    match std::env::var_os("BATON_STANDARDS_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/standards"),
    }
}

/// Floors: raise them as conformance improves, never lower them.
const LEVEL_2_FLOOR: usize = 116;
const LEVEL_3_FLOOR: usize = 1740;

#[test]
fn dmn_tck_conformance() {
    let dir = standards_dir();
    assert!(
        dir.join("dmn-tck/TestCases").is_dir(),
        "DMN TCK not found under {}; set BATON_STANDARDS_DIR",
        dir.display()
    );
    let report = baton_decision::run_tck(&dir);
    let (p2, t2) = report.level("compliance-level-2");
    let (p3, t3) = report.level("compliance-level-3");
    if let Ok(out) = std::env::var("BATON_TCK_CSV") {
        std::fs::write(out, report.csv()).expect("write CSV");
    }
    println!("compliance-level-2: {p2}/{t2}");
    println!("compliance-level-3: {p3}/{t3}");
    assert!(t2 > 0 && t3 > 0, "no test cases found");
    assert!(
        p2 >= LEVEL_2_FLOOR,
        "level 2 regressed: {p2} < {LEVEL_2_FLOOR}"
    );
    assert!(
        p3 >= LEVEL_3_FLOOR,
        "level 3 regressed: {p3} < {LEVEL_3_FLOOR}"
    );
}
