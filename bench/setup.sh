#!/usr/bin/env bash
# Prepare the benchmark peers in a throwaway venv. Idempotent: safe to run again.
#
#   bench/setup.sh                       # venv in /tmp/groupserver-bench-venv
#   BENCH_VENV=/path/to/venv bench/setup.sh
#   PYTHON=python3.12 bench/setup.sh     # interpreter for the venv (default: /usr/bin/python3)
#
# The default interpreter is the system one (/usr/bin/python3) because mod_wsgi-express runs its
# daemon processes as an unprivileged user when started as root, and that user must be able to read
# the interpreter's standard library (a pyenv build under /root is not readable). Every server runs
# on this same interpreter, so the comparison stays fair.
#
# Installs, into the venv: groupserver itself (editable, from this checkout), gunicorn, uwsgi,
# granian, waitress, py-spy (for profiling), httptools (micro.py's parser yardstick), and mod_wsgi
# (mod_wsgi-express) when Apache's development package installs from apt. Installs wrk from apt
# when it is missing.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
VENV=${BENCH_VENV:-/tmp/groupserver-bench-venv}
if [ -z "${PYTHON:-}" ]; then
    if [ -x /usr/bin/python3 ]; then PYTHON=/usr/bin/python3; else PYTHON=python3; fi
fi

log() { printf 'setup: %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

APT_UPDATED=0
apt_update_once() {
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        $SUDO apt-get update -qq
        APT_UPDATED=1
    fi
}

apt_install() {
    apt_update_once
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@"
}

# --- system tools ------------------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
    log "installing wrk"
    apt_install wrk
else
    log "wrk already installed: $(command -v wrk)"
fi
for tool in taskset chrt; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        log "installing util-linux (for $tool)"
        apt_install util-linux
    fi
done

# uWSGI builds from source: it needs a C compiler and the Python headers.
if ! command -v cc >/dev/null 2>&1; then
    log "installing a C compiler (uWSGI builds from source)"
    apt_install build-essential
fi

# The system interpreter needs its venv and header packages (uWSGI and mod_wsgi compile against
# them).
if [ "$PYTHON" = /usr/bin/python3 ]; then
    if ! /usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 \
        || [ ! -x /usr/bin/python3-config ]; then
        log "installing python3-venv and python3-dev"
        apt_install python3-venv python3-dev
    fi
fi

# --- the venv ------------------------------------------------------------------------------------
WANT_PREFIX=$("$PYTHON" -c 'import sys; print(sys.base_prefix)')
HAVE_PREFIX=""
if [ -x "$VENV/bin/python" ]; then
    HAVE_PREFIX=$("$VENV/bin/python" -c 'import sys; print(sys.base_prefix)' 2>/dev/null || true)
fi
if [ -n "$HAVE_PREFIX" ] && [ "$HAVE_PREFIX" != "$WANT_PREFIX" ]; then
    log "venv $VENV was made from $HAVE_PREFIX, not $WANT_PREFIX: recreating it"
    rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
    log "creating venv $VENV"
    "$PYTHON" -m venv "$VENV"
else
    log "venv exists: $VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip

log "installing groupserver (editable) from $REPO"
"${PIP[@]}" install -e "$REPO"

log "installing gunicorn, granian, waitress, py-spy, httptools"
"${PIP[@]}" install gunicorn granian waitress py-spy httptools

# uWSGI and mod_wsgi compile against (and link) the interpreter that builds them. pip's wheel cache
# cannot tell two CPython 3.11 builds apart, so build them without it, and rebuild one that links
# another interpreter's libpython.
linked_elsewhere() {
    # $1: binary or shared object; true when it links a libpython outside the venv's base prefix.
    local lib
    lib=$(ldd "$1" 2>/dev/null | awk '/libpython/ {print $3}')
    [ -n "$lib" ] && lib=$(readlink -f "$lib")
    [ -n "$lib" ] && [ "${lib#"$WANT_PREFIX"}" = "$lib" ]
}
if [ -x "$VENV/bin/uwsgi" ] && linked_elsewhere "$VENV/bin/uwsgi"; then
    log "uwsgi links another interpreter: rebuilding it"
    "${PIP[@]}" uninstall -y uwsgi
fi
if [ ! -x "$VENV/bin/uwsgi" ]; then
    log "building uwsgi"
    "${PIP[@]}" install --no-cache-dir uwsgi
fi

# --- mod_wsgi-express: only where Apache's development package installs ------------------------
MOD_WSGI_SO=""
if [ -x "$VENV/bin/mod_wsgi-express" ]; then
    MOD_WSGI_SO=$("$VENV/bin/mod_wsgi-express" module-location 2>/dev/null || true)
fi
if [ -n "$MOD_WSGI_SO" ] && linked_elsewhere "$MOD_WSGI_SO"; then
    log "mod_wsgi links another interpreter: rebuilding it"
    "${PIP[@]}" uninstall -y mod_wsgi
    MOD_WSGI_SO=""
fi
if [ -n "$MOD_WSGI_SO" ]; then
    log "mod_wsgi already installed"
else
    MOD_WSGI_REASON=""
    if ! command -v apxs >/dev/null 2>&1 && ! command -v apxs2 >/dev/null 2>&1; then
        log "installing apache2-dev (for mod_wsgi-express)"
        if ! apt_install apache2 apache2-dev; then
            MOD_WSGI_REASON="apt-get could not install apache2-dev"
        fi
    fi
    if [ -z "$MOD_WSGI_REASON" ]; then
        if ! "${PIP[@]}" install --no-cache-dir mod_wsgi; then
            MOD_WSGI_REASON="pip could not build mod_wsgi against the installed Apache"
        fi
    fi
    if [ -n "$MOD_WSGI_REASON" ]; then
        log "SKIPPING mod_wsgi-express: $MOD_WSGI_REASON"
    fi
fi

# --- summary -----------------------------------------------------------------------------------
log "done. versions:"
"$VENV/bin/python" - <<'EOF'
from importlib.metadata import PackageNotFoundError, version

for name in ("groupserver", "gunicorn", "uwsgi", "granian", "waitress", "mod_wsgi", "py-spy",
             "httptools"):
    try:
        print(f"  {name:12} {version(name)}")
    except PackageNotFoundError:
        print(f"  {name:12} (not installed)")
EOF
printf '  %-12s %s\n' wrk "$(wrk -v 2>&1 | head -n1)"
