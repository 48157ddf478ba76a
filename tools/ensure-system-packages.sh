#!/bin/sh
# Install the Debian packages named as arguments that are not installed yet (and python3-venv
# when the interpreter cannot make virtual environments). Runs apt-get only when something is
# missing; as root directly, otherwise through sudo.
set -eu

missing=""
for package in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $package"
    fi
done
if ! python3 -c "import ensurepip, venv" >/dev/null 2>&1; then
    missing="$missing python3-venv"
fi

if [ -z "$missing" ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing system packages:$missing (install them; this script knows only apt-get)" >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
    sudo=""
else
    sudo="sudo"
fi
echo "installing system packages:$missing"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends $missing
