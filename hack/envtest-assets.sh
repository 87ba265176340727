#!/usr/bin/env bash
# Builds the envtest control plane (kube-apiserver and etcd), and kubectl for the tests that drive it, from the
# Go module proxy into bin/k8s/<version>/, because envtest's usual download needs the internet. The result is
# cached by version: a second run only prints the directory. Prints that directory on stdout.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-1.37.2}"
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/bin/k8s/$KUBE_VERSION"

if [[ -x "$dest/kube-apiserver" && -x "$dest/etcd" && -x "$dest/kubectl" ]]; then
  echo "$dest"
  exit 0
fi

minor="${KUBE_VERSION#*.}"
staging_version="v0.${minor}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo ">> building envtest binaries for Kubernetes v$KUBE_VERSION into $dest (first time only: takes several minutes)" >&2
cd "$work"
curl -fsSL "${GOPROXY_URL:-https://proxy.golang.org}/k8s.io/kubernetes/@v/v${KUBE_VERSION}.mod" -o kubernetes.mod 2>/dev/null \
  || go mod download -json "k8s.io/kubernetes@v${KUBE_VERSION}" >/dev/null

{
  echo "module envtestbuild"
  echo "go $(go env GOVERSION | sed -E 's/^go([0-9]+\.[0-9]+).*/\1/')"
  echo "require k8s.io/kubernetes v${KUBE_VERSION}"
  if [[ -s kubernetes.mod ]]; then
    grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' kubernetes.mod | awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}'
  fi
} > go.mod
cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
echo ">> resolving modules" >&2
GOFLAGS=-mod=mod go mod tidy -e >&2 2>&1 || true
GOFLAGS=-mod=mod go get "k8s.io/kubernetes@v${KUBE_VERSION}" >&2
mkdir -p "$dest"
build() { # name package
  [[ -x "$dest/$1" ]] && return 0
  echo ">> go build $1" >&2
  GOFLAGS=-mod=mod CGO_ENABLED=0 go build -o "$dest/$1.tmp" "$2" >&2
  mv "$dest/$1.tmp" "$dest/$1"
}
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build etcd go.etcd.io/etcd/server/v3
build kubectl k8s.io/kubernetes/cmd/kubectl
echo ">> envtest binaries and kubectl ready" >&2
echo "$dest"
