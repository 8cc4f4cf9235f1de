# shellcheck shell=bash
# scripts/chaos: the load and fuzz checks against a real server (sourced by
# scripts/chaos).
#
# The server runs in prefork mode with CHAOS_WORKERS (4) HTTP workers, as Odoo
# runs in production: the clients' requests run at once in separate processes,
# each on its own database connection and core. Prefork also runs Odoo's gevent
# worker (the bus); where gevent cannot patch the standard library (a broken
# zope.interface install), that worker would die and be spawned again every
# second, so the server runs threaded instead (one thread per request, each on
# its own database connection: the same concurrency in the database, the
# Python code under one GIL). CHAOS_WORKERS=0 asks for threaded; the mode is
# in the check's line.

CHAOS_WORKERS=${CHAOS_WORKERS:-4}

# The server's mode: sets CHAOS_SERVER_ARGS and CHAOS_SERVER_MODE.
chaos_server_mode() {
    CHAOS_SERVER_ARGS=(--log-handler=odoo.service.model:INFO --log-handler=odoo.http:INFO)
    if [ "$CHAOS_WORKERS" -gt 0 ] && "$ODOO_PYTHON" -c \
        'import gevent.monkey; gevent.monkey.patch_all()' >/dev/null 2>&1; then
        CHAOS_SERVER_ARGS+=(--workers="$CHAOS_WORKERS" --gevent-port="$(free_port 18569)")
        CHAOS_SERVER_MODE="prefork, $CHAOS_WORKERS workers"
    else
        CHAOS_SERVER_MODE="threaded"
        [ "$CHAOS_WORKERS" = 0 ] || CHAOS_SERVER_MODE="threaded: gevent cannot patch here"
    fi
    export CHAOS_SERVER_MODE
}

# The data of a check (chaos_setup.py) on a fresh database, and the server:
# chaos_server_check NAME MODE; sets CHAOS_SETUP (the JSON file).
chaos_server_check() {
    local name=$1 mode=$2 db="${CHAOS_DB}_$1"
    chaos_client_venv
    chaos_new_db "$db"
    CHAOS_SETUP="$LOG_DIR/$name-setup.json" # has the users' passwords
    rm -f "$CHAOS_SETUP"
    CHAOS_SETUP="$CHAOS_SETUP" CHAOS_SETUP_MODE=$mode CHAOS_SCRIPTS="$REPO_DIR/scripts" \
        chaos_shell "$db" "$REPO_DIR/scripts/chaos_setup.py" >>"$LOG_DIR/chaos.log"
    [ -s "$CHAOS_SETUP" ] || die "the $name setup failed, see $LOG_DIR/chaos.log"
    # Odoo's retries on concurrency errors are logged at INFO by odoo.service.model
    # and odoo.http.
    chaos_server_mode
    chaos_server_start "$db"
}

# The end of a check: the server stopped, the setup removed, the database
# dropped (unless CHAOS_KEEP=1); returns the check's status.
chaos_server_done() {
    local status=$1 name=$2
    chaos_server_stop
    [ "${CHAOS_KEEP:-0}" = 1 ] || { rm -f "$CHAOS_SETUP" && drop_db "${CHAOS_DB}_$name"; }
    return "$status"
}

chaos_load() {
    local status=0
    chaos_server_check load load
    PG_PORT=$PG_PORT PG_ROLE=$PG_ROLE "$CHAOS_PYTHON" "$REPO_DIR/scripts/chaos_load.py" \
        "$CHAOS_SETUP" "$CHAOS_URL" 2>>"$LOG_DIR/chaos.log" || status=$?
    chaos_server_done "$status" load
}

chaos_fuzz() {
    local status=0
    chaos_server_check fuzz fuzz
    PG_PORT=$PG_PORT PG_ROLE=$PG_ROLE "$CHAOS_PYTHON" "$REPO_DIR/scripts/chaos_fuzz.py" \
        "$CHAOS_SETUP" "$CHAOS_URL" "$LOG_DIR/server-${CHAOS_DB}_fuzz.log" \
        2>>"$LOG_DIR/chaos.log" || status=$?
    chaos_server_done "$status" fuzz
}
