#!/usr/bin/env bash
# Makes this fork again what it claims to be: paho.mqtt.golang v1.5.1 from the Go module
# cache (or proxy), with upstream's own tests for the parts the dock touches, plus
# dock.patch. README.md, dock.patch and this script are the fork's own.
#
#   bash rebase.sh           rewrite the fork as upstream + dock.patch
#   bash rebase.sh DIR       write upstream + dock.patch into DIR (the sync test compares)
#   bash rebase.sh -record   record the fork's differences from upstream as dock.patch
#
# To move to a newer upstream: change VERSION, run it, fix what no longer applies, run
# it with -record, and update README.md.
set -euo pipefail
VERSION=v1.5.1
fork=$(cd "$(dirname "$0")" && pwd)
own=(README.md dock.patch rebase.sh)

upstream=$(cd "$fork" && go mod download -json "github.com/eclipse/paho.mqtt.golang@$VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
if [ -z "$upstream" ] || [ ! -d "$upstream" ]; then
  echo "rebase.sh: paho.mqtt.golang $VERSION is not in the module cache and could not be downloaded" >&2
  exit 3
fi
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp"; rm -rf "$tmp"' EXIT

# upstream as the fork keeps it: the library, its licences, its go.mod and go.sum, and the
# tests of the files the patch touches (packets/, backoff.go); not the examples, the fvt
# suite (a broker on port 1883) or the other root tests (they need it too).
pristine() {
  mkdir -p "$1"
  (cd "$upstream" && cp --no-preserve=mode -r --parents \
    $(ls *.go | grep -v '_test\.go$') backoff_test.go packets LICENSE NOTICE.md edl-v10 epl-v20 go.mod go.sum "$1")
}

if [ "${1:-}" = -record ]; then
  pristine "$tmp/a"
  mkdir -p "$tmp/b"
  (cd "$fork" && tar -c --exclude=README.md --exclude=dock.patch --exclude=rebase.sh .) | tar -x -C "$tmp/b"
  (cd "$tmp" && git diff --no-index --no-color --full-index --no-prefix a b) >"$fork/dock.patch" || [ $? -eq 1 ]
  echo "recorded $(grep -c '^diff ' "$fork/dock.patch") changed files in $fork/dock.patch"
  exit 0
fi

out=${1:-}
pristine "$tmp/a"
(cd "$tmp/a" && git apply --whitespace=nowarn -p1 "$fork/dock.patch")
if [ -n "$out" ]; then
  mkdir -p "$out"
  cp -r "$tmp/a/." "$out/"
  exit 0
fi
for f in "${own[@]}"; do cp "$fork/$f" "$tmp/a/$f"; done
find "$fork" -mindepth 1 -delete
cp -r "$tmp/a/." "$fork/"
echo "the fork is paho.mqtt.golang $VERSION + dock.patch again"
