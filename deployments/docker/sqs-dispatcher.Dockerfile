# syntax=docker/dockerfile:1.7
# sqs-dispatcher: starts a processor per work message, as an ECS task or, with
# LAUNCHER=exec, as a child process (hence hevc-processor and ffmpeg in this
# image); also the trigger and status jobs.
#
# Build from the repository root (the build context); multi-arch with buildx:
#   docker buildx build --platform linux/arm64,linux/amd64 \
#     -f deployments/docker/sqs-dispatcher.Dockerfile -t REGISTRY/sqs-dispatcher:TAG .
# or every image at once: make images (docker-bake.hcl).

ARG GO_VERSION=1.26.8
ARG DEBIAN_RELEASE=bookworm

# --- build: a static Go binary, cross-compiled on the build machine's own
# architecture (no emulation for the compiler).
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-${DEBIAN_RELEASE} AS build
ARG TARGETOS
ARG TARGETARCH
# Changes with the sources (podman.sh passes a hash of them): buildah, unlike
# BuildKit, leaves a bind mount's contents out of its layer cache key, and
# would otherwise reuse the binary of an older build.
ARG SOURCE_ID
WORKDIR /src
# The whole context is bind-mounted read-only (go.work needs every module it
# lists); the module and build caches persist across builds.
RUN --mount=type=bind,target=/src \
    --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH GOFLAGS=-buildvcs=false \
    go build -trimpath -ldflags="-s -w" -o /out/sqs-dispatcher ./services/sqs-dispatcher \
 && CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH GOFLAGS=-buildvcs=false \
    go build -trimpath -ldflags="-s -w" -o /out/hevc-processor ./services/hevc-processor

# --- ffmpeg: Debian's ffmpeg (5.1, with libx265), then only what ffmpeg and
# ffprobe load (the binaries and their shared libraries, as ldd lists them),
# gathered into /rootfs. The package's dependencies also bring Mesa, LLVM,
# Perl and other things the programs never load; they stay in this stage.
FROM debian:${DEBIAN_RELEASE}-slim AS ffmpeg
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && ffmpeg -hide_banner -encoders | grep -q libx265
RUN set -eu; \
    for f in $(ldd /usr/bin/ffmpeg /usr/bin/ffprobe | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && NF > 1 {print $1}' | sort -u) /usr/bin/ffmpeg /usr/bin/ffprobe; do \
      d="/rootfs$(readlink -f "$(dirname "$f")")"; mkdir -p "$d"; cp -L "$f" "$d/"; \
    done; \
    for l in bin sbin lib lib32 lib64 libx32; do if [ -L "/$l" ]; then ln -s "$(readlink "/$l")" "/rootfs/$l"; fi; done; \
    mkdir -p /rootfs/etc/ssl/certs /rootfs/usr/share; \
    cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/; \
    cp -a /usr/share/zoneinfo /rootfs/usr/share/; \
    printf 'root:x:0:0:root:/root:/sbin/nologin\nhevc:x:10001:10001:hevc:/nonexistent:/sbin/nologin\n' >/rootfs/etc/passwd; \
    printf 'root:x:0:\nhevc:x:10001:\n' >/rootfs/etc/group; \
    install -d -m 1777 /rootfs/tmp; \
    chroot /rootfs /usr/bin/ffmpeg -hide_banner -encoders | grep -q libx265

# --- runtime: the binary, ffmpeg/ffprobe and their libraries, CA
# certificates and time zones on an empty base; no shell, no package manager.
FROM scratch AS runtime
COPY --from=ffmpeg /rootfs/ /
COPY --from=build /out/sqs-dispatcher /usr/local/bin/sqs-dispatcher
COPY --from=build /out/hevc-processor /usr/local/bin/hevc-processor
ENV PATH=/usr/local/bin:/usr/bin
USER 10001:10001
WORKDIR /tmp
# Health: the service serves /metrics and /healthz on METRICS_ADDR. The image
# turns it on (:9090, inside the container: nothing is published) so that
# this HEALTHCHECK, and Portainer's health column, see the service's own
# checks (start-up checks passed, AWS accepting its calls, its dispatch loop going round); there is
# no curl in the image, so the binary asks itself. METRICS_ADDR= (empty)
# turns the listener off and the check then reports healthy.
ENV METRICS_ADDR=:9090
HEALTHCHECK --interval=30s --timeout=10s --start-period=1m --retries=3 \
    CMD ["/usr/local/bin/sqs-dispatcher", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/sqs-dispatcher"]
