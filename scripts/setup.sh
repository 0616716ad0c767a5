# Sourced by scripts/test and scripts/demo: installs what dockgate needs on a
# fresh Debian machine (Debian packages, then a virtualenv in .venv) and
# activates the virtualenv. Usage: . scripts/setup.sh [dev]
set -euo pipefail
_extra="${1:-}"
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

_apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null; then
        echo "setup: please install: ${missing[*]}" >&2; return 1
    fi
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup: installing Debian packages: ${missing[*]}" >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# what the daemon needs at run time, and what the test suite adds
_runtime_pkgs=(python3 python3-venv fonts-noto-cjk fontconfig ffmpeg)
_test_pkgs=(ffmpeg openssl mosquitto prometheus systemd  # prometheus: promtool (tests/test_alert_rules.py)
    adb  # family F: the real adb client against the simulated adbd (tests/test_zzx_adb.py)
    chromium chromium-driver fonts-noto-cjk poppler-utils
    # the real-Linux test bed (scripts/test-guest): guest image, QEMU, ssh, nspawn, lintian
    mmdebstrap qemu-system-x86 qemu-utils e2fsprogs openssh-client bc systemd-container lintian)
if [ "$_extra" = "dev" ]; then
    _apt_install "${_runtime_pkgs[@]}" ${_test_pkgs[@]+"${_test_pkgs[@]}"}
else
    _apt_install "${_runtime_pkgs[@]}"
fi

_py="${PYTHON:-python3}"
"$_py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "setup: dockgate needs Python 3.11 or newer ($_py is $("$_py" --version))" >&2; exit 1; }

if [ ! -x "$_root/.venv/bin/python" ]; then
    "$_py" -m venv "$_root/.venv"
fi
# shellcheck disable=SC1091
. "$_root/.venv/bin/activate"
_stamp="$_root/.venv/.installed-$_extra-$(sha256sum "$_root/pyproject.toml" | cut -c1-16)"
if [ ! -f "$_stamp" ]; then
    python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
    if [ "$_extra" = "dev" ]; then
        python -m pip install -q --disable-pip-version-check -e "$_root[dev]"
    else
        python -m pip install -q --disable-pip-version-check -e "$_root"
    fi
    touch "$_stamp"
fi
cd "$_root"
