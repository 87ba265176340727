#!/usr/bin/env bash
# Makes sure Node.js is installed: tests check that bodies survive JavaScript's JSON.stringify(JSON.parse(...))
# and that the product documents' own Node verifiers accept Hookpost's signatures. Installs Debian's nodejs.
set -euo pipefail
if command -v node >/dev/null 2>&1; then
  exit 0
fi
echo ">> node not found: installing Debian's nodejs package" >&2
SUDO=""
[[ "$(id -u)" -ne 0 ]] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs >/dev/null
