# Shared helpers of scripts/demo, scripts/test and scripts/bench; sourced, not run.
# shellcheck shell=bash

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOCAL_DIR="$REPO_DIR/.local"
MODULE=prepaid_postpaid_billing
PG_DIR="$LOCAL_DIR/pg"
PG_DATA="$PG_DIR/data"
PG_RUN="$PG_DIR/run"
PG_ROLE=odoo

die() {
    echo "error: $*" >&2
    exit 2
}

# Odoo: a source tree with odoo-bin and the interpreter that has its requirements.
find_odoo() {
    ODOO_PATH=${ODOO_PATH:-/opt/odoo}
    if [ -z "${ODOO_PYTHON:-}" ]; then
        if [ -x /opt/odoo-venv/bin/python ]; then
            ODOO_PYTHON=/opt/odoo-venv/bin/python
        else
            ODOO_PYTHON=$(command -v python3 || true)
        fi
    fi
    ODOO_MISSING=""
    if [ ! -f "$ODOO_PATH/odoo-bin" ]; then
        ODOO_MISSING="no Odoo 18.0 source tree: $ODOO_PATH/odoo-bin does not exist. Put the Odoo 18.0 source at /opt/odoo or set ODOO_PATH to it."
    elif [ ! -x "${ODOO_PYTHON:-/nonexistent}" ]; then
        ODOO_MISSING="no Python for Odoo: '${ODOO_PYTHON:-}' is not executable. Create a virtual environment with Odoo's requirements at /opt/odoo-venv or set ODOO_PYTHON to its interpreter."
    elif ! (cd "$ODOO_PATH" && "$ODOO_PYTHON" -c 'import odoo.release as r, sys; sys.exit(r.version_info[0] != 18)') 2>/dev/null; then
        ODOO_MISSING="$ODOO_PATH is not an Odoo 18.0 tree importable by $ODOO_PYTHON (check its requirements are installed: $ODOO_PYTHON -m pip install -r $ODOO_PATH/requirements.txt)."
    fi
    export ODOO_PATH ODOO_PYTHON
    [ -z "$ODOO_MISSING" ]
}

# The addons path: Odoo's own addons and a folder where this repository appears
# under its technical name, whatever the clone is called.  Odoo's
# odoo/custom_addons folder, when there is one, is left out on purpose.
addons_path() {
    mkdir -p "$LOCAL_DIR/addons"
    ln -sfn "$REPO_DIR" "$LOCAL_DIR/addons/$MODULE"
    local path="$ODOO_PATH/addons,$ODOO_PATH/odoo/addons,$LOCAL_DIR/addons"
    if [ -n "${EXTRA_ADDONS_PATH:-}" ]; then
        path="$path,$EXTRA_ADDONS_PATH"
    fi
    echo "$path"
}

# An OCA addon from its wheel on PyPI (OCA publishes each 18.0 addon as
# odoo-addon-<name>, which unpacks to a plain addon folder): oca_addon NAME SPEC
# unpacks it once into .local/oca-addons/NAME and puts that folder on
# EXTRA_ADDONS_PATH. Returns 1 when it cannot be had (the pip log is in
# .local/oca-wheel/NAME.log).
oca_addon() {
    local name=$1 spec=$2 dir="$LOCAL_DIR/oca-addons" wheel="$LOCAL_DIR/oca-wheel/$1"
    if [ ! -f "$dir/$name/__manifest__.py" ] || [ "$(cat "$dir/.$name.spec" 2>/dev/null)" != "$spec" ]; then
        rm -rf "$wheel" && mkdir -p "$wheel" "$dir"
        python3 -m pip download -q --no-deps -d "$wheel" "$spec" \
            >"$LOCAL_DIR/oca-wheel/$name.log" 2>&1 || return 1
        python3 -m zipfile -e "$wheel"/*.whl "$wheel/unpacked" || return 1
        rm -rf "${dir:?}/$name"
        cp -r "$wheel/unpacked/odoo/addons/$name" "$dir/" || return 1
        echo "$spec" >"$dir/.$name.spec"
    fi
    case ",${EXTRA_ADDONS_PATH:-}," in
    *",$dir,"*) ;;
    *) export EXTRA_ADDONS_PATH="$dir${EXTRA_ADDONS_PATH:+,$EXTRA_ADDONS_PATH}" ;;
    esac
}

# Run a PostgreSQL command as the cluster owner: the server refuses root.
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

pg_bin() {
    local name=$1
    if [ -x "/usr/lib/postgresql/15/bin/$name" ]; then
        echo "/usr/lib/postgresql/15/bin/$name"
    elif command -v "$name" >/dev/null; then
        command -v "$name"
    else
        die "PostgreSQL's $name was not found (install PostgreSQL 15 server binaries)."
    fi
}

free_port() {
    python3 - "$1" <<'PY'
import socket, sys
start = int(sys.argv[1])
for port in range(start, start + 200):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        print(port)
        break
PY
}

# When the scripts run as root, the server runs as the postgres user, which must
# reach the cluster's folder: if the repository sits below a folder postgres
# cannot enter, the cluster goes to a folder of its own in /tmp instead.
pg_choose_dir() {
    mkdir -p "$PG_DIR"
    if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$PG_DIR" 2>/dev/null; then
        PG_DIR="/tmp/${MODULE}-pg-$(echo "$REPO_DIR" | md5sum | cut -c1-12)"
        PG_DATA="$PG_DIR/data"
        PG_RUN="$PG_DIR/run"
        mkdir -p "$PG_DIR"
        chmod 700 "$PG_DIR"
        chown postgres: "$PG_DIR"
        echo "note: the postgres user cannot enter $REPO_DIR; cluster in $PG_DIR"
    fi
}

# Start the private cluster in .local/pg (created on first use) and export
# PG_PORT.  The port is chosen once, free at the time, and kept in .local/pg/port.
pg_start() {
    pg_choose_dir
    if [ ! -f "$PG_DATA/PG_VERSION" ]; then
        echo "Creating a private PostgreSQL cluster in $PG_DATA"
        rm -rf "$PG_DATA"
        mkdir -p "$PG_DATA" "$PG_RUN"
        if [ "$(id -u)" = 0 ]; then
            chown -R postgres: "$PG_DIR"
        fi
        as_pg "$(pg_bin initdb)" -D "$PG_DATA" -U postgres --auth=trust \
            -E UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1 ||
            die "initdb failed, see $PG_DIR/initdb.log"
        rm -f "$PG_DIR/port"
    fi
    if [ ! -s "$PG_DIR/port" ]; then
        free_port 54320 >"$PG_DIR/port"
    fi
    PG_PORT=$(cat "$PG_DIR/port")
    if ! as_pg "$(pg_bin pg_ctl)" -D "$PG_DATA" status >/dev/null 2>&1; then
        if ! python3 -c "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1', $PG_PORT))" 2>/dev/null; then
            PG_PORT=$(free_port 54320)
            echo "$PG_PORT" >"$PG_DIR/port"
        fi
        mkdir -p "$PG_RUN"
        if [ "$(id -u)" = 0 ]; then
            chown postgres: "$PG_RUN" "$PG_DIR/port"
        fi
        as_pg "$(pg_bin pg_ctl)" -D "$PG_DATA" -l "$PG_DIR/server.log" -w -t 60 \
            -o "-p $PG_PORT -k $PG_RUN -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
            start >/dev/null || die "PostgreSQL did not start, see $PG_DIR/server.log"
    fi
    export PG_PORT
    if ! psql_admin -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$PG_ROLE'" | grep -q 1; then
        psql_admin -qc "CREATE ROLE $PG_ROLE LOGIN CREATEDB SUPERUSER" ||
            die "could not create the database role $PG_ROLE"
    fi
}

pg_stop() {
    if [ -f "$PG_DATA/PG_VERSION" ]; then
        as_pg "$(pg_bin pg_ctl)" -D "$PG_DATA" -m fast stop >/dev/null 2>&1 || true
    fi
}

psql_admin() {
    PGOPTIONS="--client-min-messages=warning" as_pg "$(pg_bin psql)" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -X "$@"
}

db_exists() {
    psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$1'" | grep -q 1
}

drop_db() {
    psql_admin -qc "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)"
    rm -rf "$LOCAL_DIR/data/filestore/$1"
}

# odoo-bin with the private cluster and the repository's addons path.
odoo_bin() {
    (cd "$ODOO_PATH" && "$ODOO_PYTHON" odoo-bin \
        --addons-path="$(addons_path)" \
        --data-dir="$LOCAL_DIR/data" \
        --db_host=127.0.0.1 --db_port="$PG_PORT" --db_user="$PG_ROLE" \
        "$@")
}
