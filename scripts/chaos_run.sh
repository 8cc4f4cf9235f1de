# shellcheck shell=bash
# scripts/chaos: the crash and parallel checks (sourced by scripts/chaos).

chaos_crash() {
    echo "chaos crash: not written yet"
    return 1
}

chaos_parallel() {
    echo "chaos parallel: not written yet"
    return 1
}
