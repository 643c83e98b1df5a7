#!/usr/bin/env bash
# Installs what `make demo` and `make test` need, and only what is missing:
# Debian packages (as root, or through sudo), the Python venv, and the pinned proxy from npm.
# Re-running it when everything is there takes about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
  python3-venv nodejs npm
  qemu-system-x86 qemu-utils ovmf swtpm spice-html5 passt
  chromium
  cpio syslinux syslinux-common mtools dosfstools
  postgresql
)

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# python3-venv is only needed where the system python is Debian's own.
if python3 -m venv --help >/dev/null 2>&1; then
  missing=("${missing[@]/python3-venv}")
fi
# node and npm may come from elsewhere (nodesource, nvm): their presence is what matters.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if ((${#missing[@]})); then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "bootstrap: run as root or install sudo to get: ${missing[*]}" >&2; exit 1; }
    SUDO="sudo"
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python: a venv with the package in editable mode and its test extras.
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
if [ ! -f .venv/.installed ] || [ setup.cfg -nt .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  echo "bootstrap: installing Python packages"
  .venv/bin/pip install -q -e '.[test,postgres]'
  touch .venv/.installed
fi

# configurable-http-proxy, pinned by package-lock.json.
if [ ! -x node_modules/.bin/configurable-http-proxy ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "bootstrap: installing configurable-http-proxy"
  npm ci --no-audit --no-fund --loglevel=error
fi
