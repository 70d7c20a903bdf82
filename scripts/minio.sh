#!/usr/bin/env bash
# A throwaway local MinIO for oq's S3 tests.
#
#   scripts/minio.sh install   build the pinned MinIO into the cache (once)
#   scripts/minio.sh start     start it on a free port with a temporary data dir, create the
#                              test buckets and write .minio/env (OQ_TEST_S3_* variables)
#   scripts/minio.sh stop      stop it and delete its data
#   scripts/minio.sh test ...  start a private instance, run `vitest run ...` against it, stop it
#
# Erasure coding: with OQ_MINIO_DRIVES=4 (any N from 4 to 16), `start` runs MinIO over N drives
# in one erasure set (`minio server DATA/d{1...N}`; MINIO_CI_CD lets the drives share one disk),
# and the default parity of 4 drives is EC:2 (2 data + 2 parity): one drive lost keeps both read
# and write quorum, two lost keep read quorum only (writes answer 503). Give it a state dir of
# its own (OQ_MINIO_STATE_DIR), so you never stop a server someone else started. Then:
#
#   scripts/minio.sh drive-out K   take drive K (1..N) away: its directory is renamed and a file
#                                  put in its place (a root shell ignores chmod 000, and MinIO
#                                  would make a missing directory again and heal it at once)
#   scripts/minio.sh drive-in K    give it back as it was, stale (MinIO reconnects, heals it)
#   scripts/minio.sh restart       SIGKILL the server and start it again on the same port, data
#                                  and credentials (a crash and a reboot)
#   scripts/minio.sh bin           print the path of the cached MinIO binary (built or not)
#
# MinIO publishes no semver tags, so `go install ...@latest` resolves to a pseudo-version; we pin
# that pseudo-version so every machine tests against the same server.
set -euo pipefail

MINIO_MODULE="github.com/minio/minio"
MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${OQ_CACHE_DIR:-$HOME/.cache/oq}"
BIN_DIR="$CACHE_DIR/minio-$MINIO_VERSION"
BIN="$BIN_DIR/minio"
STATE_DIR="${OQ_MINIO_STATE_DIR:-$ROOT/.minio}"
BUCKET="oq-test"
UNVERSIONED_BUCKET="oq-test-unversioned"
REGION="us-east-1"
LIVE_TIMEOUT_S="${OQ_MINIO_TIMEOUT_S:-60}"
DRIVES="${OQ_MINIO_DRIVES:-1}"

log() { printf 'minio.sh: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

cmd_install() {
  if [[ -x "$BIN" ]]; then
    log "using cached $BIN"
    return 0
  fi
  command -v go >/dev/null 2>&1 || die "Go is needed to build MinIO ($MINIO_MODULE@$MINIO_VERSION); install Go >= 1.24 and retry"
  mkdir -p "$CACHE_DIR"
  # Build into a private directory and rename: an interrupted or concurrent build never leaves
  # a half-written binary at the cached path.
  local tmp
  tmp="$(mktemp -d "$CACHE_DIR/.minio-build.XXXXXX")"
  log "building $MINIO_MODULE@$MINIO_VERSION (a cold build takes several minutes)"
  local started=$SECONDS
  if ! GOBIN="$tmp" go install "$MINIO_MODULE@$MINIO_VERSION"; then
    rm -rf "$tmp"
    die "go install $MINIO_MODULE@$MINIO_VERSION failed"
  fi
  mkdir -p "$BIN_DIR"
  mv -f "$tmp/minio" "$BIN"
  rm -rf "$tmp"
  log "built $BIN in $((SECONDS - started))s"
}

# Two distinct free TCP ports on 127.0.0.1 (the API and the console, which cannot share one).
free_ports() {
  node -e '
    const net = require("node:net");
    const take = () => new Promise((ok) => { const s = net.createServer(); s.listen(0, "127.0.0.1", () => ok(s)); });
    Promise.all([take(), take()]).then((ss) => { console.log(ss.map((s) => s.address().port).join(" ")); ss.forEach((s) => s.close()); });
  '
}

is_running() {
  [[ -f "$STATE_DIR/pid" ]] && kill -0 "$(cat "$STATE_DIR/pid")" 2>/dev/null
}

# The data argument: one directory, or N drives in one erasure set (MinIO expands {1...N}).
data_spec() {
  local data="$1" drives="$2"
  if ((drives == 1)); then echo "$data"; else echo "$data/d{1...$drives}"; fi
}

# Start the server from the settings saved in the state dir (start writes them, restart reuses).
launch() {
  # shellcheck disable=SC1091
  source "$STATE_DIR/server"
  # MINIO_CI_CD: accept a data dir (or N drives) on the root disk; BROWSER/UPDATE off: no
  # console, no phoning home.
  MINIO_ROOT_USER="$user" MINIO_ROOT_PASSWORD="$password" MINIO_CI_CD=on MINIO_BROWSER=off \
    MINIO_UPDATE=off MINIO_REGION="$REGION" \
    nohup "$BIN" server --quiet --address "127.0.0.1:$port" --console-address "127.0.0.1:$console_port" \
    "$(data_spec "$data" "$drives")" >>"$STATE_DIR/minio.log" 2>&1 </dev/null &
  echo $! >"$STATE_DIR/pid"
}

# Wait until the server answers (an erasure set: until it has write quorum, /health/cluster).
wait_live() {
  local endpoint="$1" drives="$2" path=/minio/health/live
  ((drives == 1)) || path=/minio/health/cluster
  local deadline=$((SECONDS + LIVE_TIMEOUT_S))
  until node -e 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' \
    "$endpoint$path" 2>/dev/null; do
    if ! is_running; then
      log "MinIO exited during start-up; its log:"
      cat "$STATE_DIR/minio.log" >&2
      cleanup_state
      die "MinIO did not start"
    fi
    if ((SECONDS >= deadline)); then
      log "MinIO did not answer $endpoint$path within ${LIVE_TIMEOUT_S}s; its log:"
      cat "$STATE_DIR/minio.log" >&2
      cmd_stop
      die "MinIO did not become live"
    fi
    sleep 0.2
  done
}

cmd_start() {
  if is_running && [[ -f "$STATE_DIR/env" ]]; then
    log "already running (pid $(cat "$STATE_DIR/pid")); env in $STATE_DIR/env"
    return 0
  fi
  if ! [[ "$DRIVES" =~ ^[0-9]+$ ]] || { ((DRIVES != 1)) && ((DRIVES < 4 || DRIVES > 16)); }; then
    die "OQ_MINIO_DRIVES is 1 (one directory) or 4 to 16 (one erasure set), not '$DRIVES'"
  fi
  cmd_install
  mkdir -p "$STATE_DIR"
  local data port console_port user password endpoint
  data="$(mktemp -d "${TMPDIR:-/tmp}/oq-minio-data.XXXXXX")"
  echo "$data" >"$STATE_DIR/data-dir"
  read -r port console_port < <(free_ports)
  endpoint="http://127.0.0.1:$port"
  # Fresh credentials per run: nothing to leak, nothing to rotate.
  user="oqtest$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
  password="$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')"
  (
    umask 077
    printf "data='%s'\ndrives='%s'\nport='%s'\nconsole_port='%s'\nuser='%s'\npassword='%s'\n" \
      "$data" "$DRIVES" "$port" "$console_port" "$user" "$password" >"$STATE_DIR/server"
  )

  log "starting MinIO on $endpoint (data $(data_spec "$data" "$DRIVES"))"
  launch
  wait_live "$endpoint" "$DRIVES"

  local admin_env=(OQ_ENDPOINT="$endpoint" OQ_REGION="$REGION" AWS_ACCESS_KEY_ID="$user"
    AWS_SECRET_ACCESS_KEY="$password")
  if ! (cd "$ROOT" && env "${admin_env[@]}" npx --no-install tsx scripts/s3-admin.ts create-bucket "$BUCKET" --versioned &&
    env "${admin_env[@]}" npx --no-install tsx scripts/s3-admin.ts create-bucket "$UNVERSIONED_BUCKET"); then
    cat "$STATE_DIR/minio.log" >&2
    cmd_stop
    die "could not create the test buckets"
  fi

  umask 077
  cat >"$STATE_DIR/env" <<EOF
export OQ_TEST_S3_ENDPOINT='$endpoint'
export OQ_TEST_S3_BUCKET='$BUCKET'
export OQ_TEST_S3_UNVERSIONED_BUCKET='$UNVERSIONED_BUCKET'
export OQ_TEST_S3_ACCESS_KEY_ID='$user'
export OQ_TEST_S3_SECRET_ACCESS_KEY='$password'
export OQ_TEST_S3_REGION='$REGION'
export OQ_TEST_S3_DRIVES='$DRIVES'
EOF
  log "ready; run: source $STATE_DIR/env"
}

# The directory of drive $1 of this state dir's erasure set, checked.
drive_dir() {
  [[ -f "$STATE_DIR/server" ]] || die "no server state in $STATE_DIR (start it first)"
  # shellcheck disable=SC1091
  source "$STATE_DIR/server"
  ((drives > 1)) || die "the server in $STATE_DIR has one drive; start it with OQ_MINIO_DRIVES=4"
  if ! [[ "${1:-}" =~ ^[0-9]+$ ]] || (($1 < 1 || $1 > drives)); then
    die "name a drive from 1 to $drives"
  fi
  echo "$data/d$1"
}

cmd_drive_out() {
  local dir
  dir="$(drive_dir "${1:-}")"
  [[ -d "$dir" ]] || die "drive $1 is already out"
  mv "$dir" "$dir.out"
  # MinIO makes a missing drive directory again within a second and heals it as a replaced
  # drive; a file in its place keeps the drive offline, like a dead disk, until drive-in.
  : >"$dir"
  log "drive $1 out ($dir renamed, a file in its place)"
}

cmd_drive_in() {
  local dir
  dir="$(drive_dir "${1:-}")"
  [[ -d "$dir.out" ]] || die "drive $1 is not out"
  rm -rf "$dir"
  mv "$dir.out" "$dir"
  log "drive $1 back"
}

cmd_restart() {
  [[ -f "$STATE_DIR/server" ]] || die "no server state in $STATE_DIR (start it first)"
  if is_running; then
    local pid
    pid="$(cat "$STATE_DIR/pid")"
    kill -9 "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  fi
  launch
  # shellcheck disable=SC1091
  source "$STATE_DIR/server"
  wait_live "http://127.0.0.1:$port" "$drives"
  log "restarted (pid $(cat "$STATE_DIR/pid"))"
}

cleanup_state() {
  if [[ -f "$STATE_DIR/data-dir" ]]; then
    rm -rf "$(cat "$STATE_DIR/data-dir")"
  fi
  rm -f "$STATE_DIR/pid" "$STATE_DIR/env" "$STATE_DIR/data-dir" "$STATE_DIR/server"
}

cmd_stop() {
  if [[ -f "$STATE_DIR/pid" ]]; then
    local pid
    pid="$(cat "$STATE_DIR/pid")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      local i
      for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
      done
      if kill -0 "$pid" 2>/dev/null; then
        log "MinIO (pid $pid) ignored SIGTERM; killing it"
        kill -9 "$pid" 2>/dev/null || true
      fi
    fi
    log "stopped"
  fi
  cleanup_state
}

cmd_test() {
  # A private instance, so a test run never stops a server someone else started with `start`.
  STATE_DIR="$(mktemp -d "${TMPDIR:-/tmp}/oq-minio-state.XXXXXX")"
  trap 'cmd_stop; rm -rf "$STATE_DIR"' EXIT
  cmd_start
  # shellcheck disable=SC1091
  source "$STATE_DIR/env"
  local rc=0
  (cd "$ROOT" && npx --no-install vitest run "$@") || rc=$?
  return "$rc"
}

case "${1:-}" in
install) cmd_install ;;
start) cmd_start ;;
stop) cmd_stop ;;
restart) cmd_restart ;;
drive-out) cmd_drive_out "${2:-}" ;;
drive-in) cmd_drive_in "${2:-}" ;;
bin) echo "$BIN" ;;
test)
  shift
  cmd_test "$@"
  ;;
*)
  echo "usage: $0 install | start | stop | restart | drive-out K | drive-in K | bin | test [vitest args...]" >&2
  exit 2
  ;;
esac
