#!/bin/sh
# Lab image entrypoint. The pod names the program (the lab launcher in the "vm" container,
# jupyterhub-singleuser in "console"); this only makes sure HOME is writable when the root
# filesystem is read-only, then hands over (exec: signals reach the program directly).
set -eu
: "${HOME:=/tmp}"
mkdir -p "$HOME" 2>/dev/null || true
exec "$@"
