# shellcheck shell=bash
# scripts/chaos: the load and fuzz checks against a real server (sourced by
# scripts/chaos).

chaos_load() {
    echo "chaos load: not written yet"
    return 1
}

chaos_fuzz() {
    echo "chaos fuzz: not written yet"
    return 1
}
