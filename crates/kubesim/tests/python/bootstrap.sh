#!/usr/bin/env bash
# Creates (or refreshes) the virtualenv of kubesim's Python conformance suite:
# the official `kubernetes` client, `kopf` and `pytest`, pinned in
# requirements.txt next to this script.
#
#   bootstrap.sh [VENV_DIR]
#
# VENV_DIR defaults to $CARGO_TARGET_DIR/python-venv (or <repo>/target/python-venv).
# Idempotent: nothing is installed when the venv exists and was built from the
# current requirements.txt (its hash is kept in VENV_DIR/.requirements.sha256).
# Concurrent callers (two test processes) serialize on a lock file. Prints the
# venv's python on success; exits non-zero with the reason otherwise.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../../.." && pwd)"
venv="${1:-${CARGO_TARGET_DIR:-$repo/target}/python-venv}"
venv="$(realpath -m "$venv")"
req="$here/requirements.txt"
python="${PYTHON:-python3}"

command -v "$python" >/dev/null 2>&1 || {
    echo "bootstrap.sh: $python not found; install Python 3 (Debian: apt-get install -y python3 python3-venv)" >&2
    exit 1
}
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
if ! flock -w 900 9; then
    echo "bootstrap.sh: timed out waiting for $venv.lock (another bootstrap still running?)" >&2
    exit 1
fi

want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$venv/.requirements.sha256" && "$(cat "$venv/.requirements.sha256")" == "$want" ]]; then
    echo "$venv/bin/python"
    exit 0
fi

cd /
rm -rf "$venv"
if ! "$python" -m venv "$venv" >&2; then
    echo "bootstrap.sh: '$python -m venv' failed; on Debian/Ubuntu install the venv module: apt-get install -y python3-venv" >&2
    rm -rf "$venv"
    exit 1
fi
if ! "$venv/bin/python" -m pip install --disable-pip-version-check --quiet -r "$req" >&2; then
    echo "bootstrap.sh: pip install -r $req failed (is PyPI reachable?)" >&2
    rm -rf "$venv"
    exit 1
fi
echo "$want" > "$venv/.requirements.sha256"
echo "$venv/bin/python"
