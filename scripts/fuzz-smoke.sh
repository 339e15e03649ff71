#!/usr/bin/env bash
# Fuzz smoke test: builds every cargo-fuzz target of fuzz/ once, then runs each one for a bounded
# time from the committed seeds (fuzz/seeds/TARGET) and a scratch corpus, and fails if any target
# crashes (a panic, a failed assertion, a timeout or an out-of-memory).
#
#   scripts/fuzz-smoke.sh                 # every target, FUZZ_SECONDS (default 20) each
#   FUZZ_SECONDS=5 scripts/fuzz-smoke.sh rpc_call uaddr   # some targets only
#
# Environment: FUZZ_SECONDS (per target), FUZZ_CORPUS_DIR (keep the scratch corpora there instead
# of a temporary directory). Needs cargo-fuzz (installed from crates.io if missing); runs on stable
# with `--sanitizer none`. Crash inputs land in fuzz/artifacts/TARGET/ (ignored by git).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fuzz_dir="$root/fuzz"
seconds=${FUZZ_SECONDS:-20}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

if [[ -n ${FUZZ_CORPUS_DIR:-} ]]; then
    scratch=$FUZZ_CORPUS_DIR
    mkdir -p "$scratch"
else
    scratch=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-smoke.XXXXXX")
    trap 'rm -rf "$scratch"' EXIT
fi

cd "$fuzz_dir"
start=$SECONDS
echo "fuzz: building all targets (cargo fuzz build --sanitizer none)"
cargo fuzz build --sanitizer none
build_time=$((SECONDS - start))

if (($# > 0)); then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

dict_for() {
    case $1 in
    directory_request | directory_reply | transfer_get_file | transfer_header | \
        directory_server_message | capabilities_reply | search_query | transfer_request | \
        transfer_from_header)
        echo "-dict=$fuzz_dir/dict/directory.dict"
        ;;
    rpc_call | rpc_reply | rpc_dispatch | xdr_log_entry | rpcbind | record_reassembler)
        echo "-dict=$fuzz_dir/dict/rpc.dict"
        ;;
    esac
}

passed=0
failed=0
failures=()
summary=()
for target in "${targets[@]}"; do
    corpus="$scratch/corpus/$target"
    log="$scratch/$target.log"
    mkdir -p "$corpus"
    seeds="$fuzz_dir/seeds/$target"
    [[ -d $seeds ]] || seeds=""
    dict=$(dict_for "$target")
    t0=$SECONDS
    # libFuzzer reads every corpus directory given and writes new inputs into the first only,
    # so the committed seeds are never modified.
    # shellcheck disable=SC2086 # $seeds and $dict are empty or one word each
    if cargo fuzz run --sanitizer none "$target" "$corpus" $seeds -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        $dict >"$log" 2>&1; then
        status=ok
        passed=$((passed + 1))
    else
        status=CRASH
        failed=$((failed + 1))
        failures+=("$target")
    fi
    runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
    if [[ -z $runs ]]; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\)/\1/p' "$log" | tail -n 1)
    fi
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2 || true)
    line=$(printf 'fuzz: %-36s %-5s %12s execs in %3ss, cov %s, corpus %s files' \
        "$target" "$status" "${runs:-?}" "$((SECONDS - t0))" "${cov:-?}" \
        "$(find "$corpus" -type f | wc -l)")
    echo "$line"
    summary+=("$line")
    if [[ $status != ok ]]; then
        echo "---- $target: last lines of its libFuzzer log ($log) ----"
        tail -n 40 "$log"
        echo "---- crash inputs: $fuzz_dir/artifacts/$target/ ----"
    fi
done

echo
echo "fuzz smoke summary (build ${build_time}s, ${seconds}s per target, total $((SECONDS - start))s):"
printf '%s\n' "${summary[@]}"
if ((failed > 0)); then
    echo "fuzz: crashing targets: ${failures[*]}"
fi
echo "fuzz: $passed passed, $failed failed"
((failed == 0))
