#!/usr/bin/env bash
# Podman for the image tests (`make test`, `make images-test`) on a machine
# without a Docker engine and without a registry.
#
#   deployments/docker/podman.sh setup [amd64] [arm64]
#       installs podman (Debian packages), writes its configuration and builds
#       the base images the Dockerfiles name when they are missing:
#       debian:<release>-slim from mmdebstrap (minbase), and golang:<go>-<release>
#       (that base + ca-certificates, tzdata, git and this machine's Go).
#   deployments/docker/podman.sh build <Dockerfile> <image> [podman build args]
#       builds one service image from the repository root, the way the tests do.
#   deployments/docker/podman.sh <podman args>
#       podman with that configuration, e.g. `podman.sh images`.
#
# Everything podman keeps (layers, configuration, temp files) is in
# ${XDG_CACHE_HOME:-~/.cache}/hevc-encoder/podman, so a second run reuses the
# layers and nothing lands in /var/lib/containers.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/hevc-encoder/podman
export CONTAINERS_CONF=$cache/containers.conf
export CONTAINERS_STORAGE_CONF=$cache/storage.conf
export TMPDIR=$cache/tmp

sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo

# The names the Dockerfiles' FROM lines resolve to (their global ARG defaults).
dockerfile_arg() { sed -n "s/^ARG $1=//p" "$here/hevc-processor.Dockerfile" | head -n1; }
DEBIAN_RELEASE=$(dockerfile_arg DEBIAN_RELEASE)
GO_VERSION=$(dockerfile_arg GO_VERSION)
DEBIAN_IMAGE=docker.io/library/debian:$DEBIAN_RELEASE-slim
GOLANG_IMAGE=docker.io/library/golang:$GO_VERSION-$DEBIAN_RELEASE
# Module downloads inside the builds come from this machine's module cache,
# mounted read-only (no network, no proxy certificates in any image).
GOMODCACHE_MOUNT=/run/host-gomodcache

install_packages() {
  local missing=()
  for c in podman runc newuidmap fuse-overlayfs slirp4netns mmdebstrap podman-compose; do
    command -v "$c" >/dev/null 2>&1 || missing+=("$c")
  done
  [ -e /usr/lib/cni/bridge ] || [ -e /usr/lib/podman/netavark ] || missing+=(containernetworking-plugins)
  [ ${#missing[@]} = 0 ] && return 0
  echo "deps: ${missing[*]} missing; installing podman and its tools (Debian packages)" >&2
  $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    podman runc uidmap fuse-overlayfs slirp4netns containernetworking-plugins mmdebstrap podman-compose >/dev/null
}

write_config() {
  mkdir -p "$cache/storage" "$cache/run" "$cache/tmp"
  cat >"$cache/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$cache/storage"
runroot = "$cache/run"
EOF
  # runc: crun fails on hybrid cgroups; cgroupfs: no systemd here; ulimits:
  # podman's defaults (the host's hard limits) cannot be set in this sandbox.
  cat >"$cache/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
}

host_arch() { case "$(uname -m)" in x86_64) echo amd64 ;; aarch64) echo arm64 ;; *) uname -m ;; esac; }

# A foreign architecture runs under QEMU (binfmt_misc): the ffmpeg stage's
# apt-get and the checks run emulated; Go still compiles natively.
emulation() { # emulation <arch>
  local arch=$1 q
  [ "$arch" = "$(host_arch)" ] && return 0
  q=$(case "$arch" in arm64) echo aarch64 ;; amd64) echo x86_64 ;; *) echo "$arch" ;; esac)
  if [ ! -x "/usr/bin/qemu-$q-static" ]; then
    echo "deps: installing qemu-user-static and binfmt-support (to build $arch images)" >&2
    $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq qemu-user-static binfmt-support >/dev/null
  fi
  [ -e /proc/sys/fs/binfmt_misc/register ] || $sudo mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  $sudo update-binfmts --enable "qemu-$q" >/dev/null 2>&1 || true
  [ -e "/proc/sys/fs/binfmt_misc/qemu-$q" ] || { echo "deps: binfmt_misc has no qemu-$q entry; cannot run $arch programs" >&2; exit 1; }
}

debian_image() { # debian_image <arch>
  local arch=$1 name=$DEBIAN_IMAGE
  [ "$arch" = amd64 ] || name=localhost/hevc-encoder-base/debian:$DEBIAN_RELEASE-slim-$arch
  podman image exists "$name" && return 0
  echo "deps: building $name ($arch) with mmdebstrap (a few minutes)" >&2
  local tar="$cache/tmp/debian-$DEBIAN_RELEASE-$arch.tar"
  mmdebstrap --quiet --variant=minbase --arch="$arch" "$DEBIAN_RELEASE" "$tar"
  podman import --quiet --arch "$arch" --change 'CMD ["bash"]' "$tar" "$name" >/dev/null
  rm -f "$tar"
}

golang_image() { # golang_image (amd64 only: the builder runs on the build machine)
  podman image exists "$GOLANG_IMAGE" && return 0
  local have; have=$(go env GOVERSION)
  [ "$have" = "go$GO_VERSION" ] || echo "deps: note: the Dockerfiles name Go $GO_VERSION, this machine has $have; $GOLANG_IMAGE gets $have" >&2
  echo "deps: building $GOLANG_IMAGE (the base + ca-certificates, tzdata, git and this machine's Go)" >&2
  local ctx="$cache/tmp/golang-standin"
  mkdir -p "$ctx"
  cat >"$ctx/Containerfile" <<EOF
FROM $DEBIAN_IMAGE
RUN apt-get update \\
 && apt-get install -y --no-install-recommends ca-certificates tzdata git \\
 && rm -rf /var/lib/apt/lists/* \\
 && cp -a /host-go /usr/local/go
ENV GOPATH=/go PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ENV GOTOOLCHAIN=local GOPROXY=file://$GOMODCACHE_MOUNT GOSUMDB=off
EOF
  podman build --quiet --pull=never --platform linux/amd64 -v "$(go env GOROOT):/host-go:ro" \
    -t "$GOLANG_IMAGE" -f "$ctx/Containerfile" "$ctx" >/dev/null
  rm -rf "$ctx"
}

case "${1:-}" in
  setup)
    shift
    install_packages
    write_config
    # The host's base is always needed: the golang: builder stands on it.
    for arch in $(printf '%s\n' "$(host_arch)" "$@" | awk '!seen[$0]++'); do
      emulation "$arch"
      debian_image "$arch"
    done
    golang_image
    ;;
  build)
    shift
    df=$1 image=$2
    shift 2
    arch=$(host_arch)
    for a in "$@"; do case "$a" in linux/*) arch=${a#linux/} ;; esac; done
    if [ "$arch" != "$(host_arch)" ]; then
      # buildah 1.28 resolves every FROM for the one --platform of the
      # build (a FROM --platform=linux/amd64 would switch the later stages
      # to amd64): lend the Dockerfiles' names, for this build, to the
      # target's base and to this machine's builder labelled with the
      # target's architecture (its Go runs natively and cross-compiles).
      host_builder=localhost/hevc-encoder-base/golang:$GO_VERSION-$DEBIAN_RELEASE-$(host_arch)
      label_builder=localhost/hevc-encoder-base/golang:$GO_VERSION-$DEBIAN_RELEASE-as-$arch
      if ! podman image exists "$label_builder"; then
        ctr=$(buildah from --pull-never "$GOLANG_IMAGE")
        buildah config --arch "$arch" "$ctr"
        buildah commit --quiet "$ctr" "$label_builder" >/dev/null
        buildah rm "$ctr" >/dev/null
      fi
      podman tag "$DEBIAN_IMAGE" "localhost/hevc-encoder-base/debian:$DEBIAN_RELEASE-slim-$(host_arch)"
      podman tag "$GOLANG_IMAGE" "$host_builder"
      trap 'podman tag "localhost/hevc-encoder-base/debian:$DEBIAN_RELEASE-slim-$(host_arch)" "$DEBIAN_IMAGE"; podman tag "$host_builder" "$GOLANG_IMAGE"' EXIT
      podman tag "localhost/hevc-encoder-base/debian:$DEBIAN_RELEASE-slim-$arch" "$DEBIAN_IMAGE"
      podman tag "$label_builder" "$GOLANG_IMAGE"
      # BUILDPLATFORM stays unset: the builder now answers for the target.
      args=()
      for a in "$@"; do case "$a" in BUILDPLATFORM=*) unset 'args[${#args[@]}-1]' ;; *) args+=("$a") ;; esac; done
      set -- "${args[@]}"
    fi
    # The sources' identity: buildah's layer cache does not look into the
    # bind mount the Go build reads them from (BuildKit's does), so without
    # it a changed source would get the previous build's binary.
    source_id=$( (cd "$root" && git ls-files -z -co --exclude-standard | xargs -0 -r sha256sum 2>/dev/null) | sha256sum | cut -c1-16)
    # Docker's image format: the OCI format has no HEALTHCHECK (buildah
    # drops it with a warning), and Docker/Portainer read it from there.
    podman build --pull=never --layers --format docker -f "$df" -t "$image" \
      --build-arg "SOURCE_ID=$source_id" \
      -v "$(go env GOMODCACHE)/cache/download:$GOMODCACHE_MOUNT:ro" "$@" "$root"
    ;;
  env)
    echo "export CONTAINERS_CONF=$CONTAINERS_CONF CONTAINERS_STORAGE_CONF=$CONTAINERS_STORAGE_CONF TMPDIR=$TMPDIR"
    ;;
  "")
    echo "usage: $0 setup [amd64] [arm64] | build <Dockerfile> <image> [args] | env | <podman args>" >&2
    exit 2
    ;;
  *)
    exec podman "$@"
    ;;
esac
