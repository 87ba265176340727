#!/usr/bin/env bash
# Makes sure the PostgreSQL server binaries (initdb, pg_ctl, postgres) exist; tests start throwaway clusters
# from them. Installs Debian's postgresql package when they are missing. No server is left running.
set -euo pipefail
for dir in /usr/lib/postgresql/*/bin; do
  if [[ -x "$dir/initdb" && -x "$dir/postgres" ]]; then
    exit 0
  fi
done
echo ">> PostgreSQL server binaries not found: installing Debian's postgresql package" >&2
SUDO=""
[[ "$(id -u)" -ne 0 ]] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
# The package starts a cluster on install; tests bring their own, so stop it.
$SUDO service postgresql stop >/dev/null 2>&1 || true
