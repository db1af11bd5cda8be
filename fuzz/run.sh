#!/usr/bin/env bash
# Runs every fuzz target of baton-decision for a bounded time.
#
#   fuzz/run.sh [SECONDS_PER_TARGET]      (default 60)
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# Targets:
#   feel     FEEL text parsed as an expression and as unary tests, then
#            evaluated with a small step budget.
#   dmn_xml  DMN XML parsed and compiled, every decision evaluated with a
#            trace on two inputs.
# The corpus starts from fuzz/seeds/<target> and grows in fuzz/corpus/<target>
# (not committed). A crash, a stack overflow, a timeout (-timeout, seconds
# for one input) or memory past -rss_limit_mb stops the run and leaves the
# input in fuzz/artifacts/<target>/; reproduce it with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>
# and add a regression test to crates/baton-decision before fixing.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
status=0
# The DMN TCK's models, when the shared standards folder is beside the
# repository, make a richer starting corpus for dmn_xml (copied, not
# committed; only those within -max_len).
tck="${BATON_STANDARDS_DIR:-../../shared/standards}/dmn-tck/TestCases"
if [ -d "$tck" ]; then
    mkdir -p corpus/dmn_xml
    find "$tck" -name '*.dmn' -size -8k -exec cp -n {} corpus/dmn_xml/ \; 2>/dev/null || true
fi
for target in feel dmn_xml; do
    mkdir -p "corpus/$target"
    echo "== $target: ${secs}s"
    if ! nice -n 10 cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
        -print_final_stats=1; then
        echo "== $target: FAILED (see fuzz/artifacts/$target/)"
        status=1
    fi
done
exit "$status"
