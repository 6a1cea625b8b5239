#!/usr/bin/env bash
# Installs what `make run`, `make test` and `make bench` need, pinned, and says
# what it installs. Usage: scripts/deps.sh ffmpeg|test|bench|containers [amd64] [arm64]
set -euo pipefail

MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
SQS_VERSION=2.0.2
cache=${XDG_CACHE_HOME:-$HOME/.cache}/hevc-encoder

apt_install() { # apt_install <command> <package>
  command -v "$1" >/dev/null 2>&1 && return 0
  [ -x "/usr/bin/$1" ] && return 0
  echo "deps: $1 is missing; installing the OS package $2" >&2
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$2" >/dev/null
}

ffmpeg() {
  apt_install ffmpeg ffmpeg
  apt_install ffprobe ffmpeg
}

minio() {
  local bin; bin="$(go env GOPATH)/bin/minio"
  if [ -x "$bin" ] && [ -f "$cache/minio.version" ] && [ "$(cat "$cache/minio.version")" = "$MINIO_VERSION" ]; then return 0; fi
  echo "deps: installing MinIO $MINIO_VERSION with go install (2-3 minutes the first time)" >&2
  (cd / && GOFLAGS= go install "github.com/minio/minio@$MINIO_VERSION")
  mkdir -p "$cache" && echo "$MINIO_VERSION" > "$cache/minio.version"
}

sqs() {
  [ -f "$cache/npm/node_modules/local-aws-sqs/package.json" ] && grep -q "\"version\": \"$SQS_VERSION\"" "$cache/npm/node_modules/local-aws-sqs/package.json" && return 0
  echo "deps: installing local-aws-sqs@$SQS_VERSION from npm" >&2
  mkdir -p "$cache/npm"
  npm install --silent --no-audit --no-fund --prefix "$cache/npm" "local-aws-sqs@$SQS_VERSION" >/dev/null
}

os_aws() {
  [ -x /usr/bin/aws ] && return 0
  echo "deps: /usr/bin/aws is missing; installing the OS package awscli" >&2
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq awscli >/dev/null
}

# podman, its configuration and the base images the Dockerfiles name
# (debian:<release>-slim from mmdebstrap, a golang: builder with this
# machine's Go), all kept under $cache/podman: deployments/docker/podman.sh.
containers() {
  "$(dirname "$0")/../deployments/docker/podman.sh" setup "$@"
}

case "${1:-test}" in
  ffmpeg) ffmpeg ;;
  test) ffmpeg; apt_install rclone rclone; minio; sqs; containers ;;
  containers) shift; containers "$@" ;;
  # The transfer bench compares against the OS package's AWS CLI (/usr/bin/aws),
  # whatever other `aws` comes first on PATH, so that every machine measures
  # the same client.
  bench) ffmpeg; apt_install rclone rclone; os_aws; minio; sqs ;;
  *) echo "usage: $0 ffmpeg|test|bench|containers [amd64] [arm64]" >&2; exit 2 ;;
esac
