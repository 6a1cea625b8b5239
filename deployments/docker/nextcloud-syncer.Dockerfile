# syntax=docker/dockerfile:1.7
# nextcloud-syncer: moves camera uploads from Nextcloud (WebDAV) into the
# library. Pure Go: the image is the static binary, CA certificates and
# time zones on an empty base.
#
# Build from the repository root (the build context); multi-arch with buildx:
#   docker buildx build --platform linux/arm64,linux/amd64 \
#     -f deployments/docker/nextcloud-syncer.Dockerfile -t REGISTRY/nextcloud-syncer:TAG .
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
    go build -trimpath -ldflags="-s -w" -o /out/nextcloud-syncer ./services/nextcloud-syncer

# --- runtime: CA certificates, tzdata and a nonroot user (65532), no shell.
FROM scratch AS runtime
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /usr/share/zoneinfo /usr/share/zoneinfo
COPY --from=build /out/nextcloud-syncer /usr/local/bin/nextcloud-syncer
USER 65532:65532
# Health: the service serves /metrics and /healthz on METRICS_ADDR. The image
# turns it on (:9090, inside the container: nothing is published) so that
# this HEALTHCHECK, and Portainer's health column, see the service's own
# checks (the last pass reached every user's folder); there is
# no curl in the image, so the binary asks itself. METRICS_ADDR= (empty)
# turns the listener off and the check then reports healthy.
ENV METRICS_ADDR=:9090
HEALTHCHECK --interval=30s --timeout=10s --start-period=1m --retries=3 \
    CMD ["/usr/local/bin/nextcloud-syncer", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/nextcloud-syncer"]
