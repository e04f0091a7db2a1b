#!/usr/bin/env bash
# Prepare the benchmark peers in a throwaway venv. Idempotent: safe to run again.
#
#   bench/setup.sh                       # venv in /tmp/groupserver-bench-venv
#   BENCH_VENV=/path/to/venv bench/setup.sh
#   PYTHON=python3.12 bench/setup.sh     # interpreter for the venv (default: python3)
#
# Installs, into the venv: groupserver itself (editable, from this checkout), gunicorn, uwsgi,
# granian, waitress, py-spy (for profiling), and mod_wsgi (mod_wsgi-express) when Apache's
# development package installs from apt. Installs wrk from apt when it is missing.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
VENV=${BENCH_VENV:-/tmp/groupserver-bench-venv}
PYTHON=${PYTHON:-python3}

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

# --- the venv ------------------------------------------------------------------------------------
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

log "installing gunicorn, uwsgi, granian, waitress, py-spy"
"${PIP[@]}" install gunicorn uwsgi granian waitress py-spy

# --- mod_wsgi-express: only where Apache's development package installs ------------------------
if "$VENV/bin/python" -c "import mod_wsgi" >/dev/null 2>&1; then
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
        if ! "${PIP[@]}" install mod_wsgi; then
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

for name in ("groupserver", "gunicorn", "uwsgi", "granian", "waitress", "mod_wsgi", "py-spy"):
    try:
        print(f"  {name:12} {version(name)}")
    except PackageNotFoundError:
        print(f"  {name:12} (not installed)")
EOF
printf '  %-12s %s\n' wrk "$(wrk -v 2>&1 | head -n1)"
