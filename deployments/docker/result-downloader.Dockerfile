# syntax=docker/dockerfile:1.7
# result-downloader: installs DONE/ results into the library after verifying them with ffprobe/ffmpeg.
#
# Build from the repository root (the build context); multi-arch with buildx:
#   docker buildx build --platform linux/arm64,linux/amd64 \
#     -f deployments/docker/result-downloader.Dockerfile -t REGISTRY/result-downloader:TAG .
# or every image at once: make images (docker-bake.hcl).

ARG GO_VERSION=1.26.8
ARG DEBIAN_RELEASE=bookworm

# --- build: a static Go binary, cross-compiled on the build machine's own
# architecture (no emulation for the compiler).
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-${DEBIAN_RELEASE} AS build
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src
# The whole context is bind-mounted read-only (go.work needs every module it
# lists); the module and build caches persist across builds.
RUN --mount=type=bind,target=/src \
    --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH GOFLAGS=-buildvcs=false \
    go build -trimpath -ldflags="-s -w" -o /out/result-downloader ./services/result-downloader

# --- runtime: Debian's ffmpeg (5.1, with libx265) and CA certificates.
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && ffmpeg -hide_banner -encoders | grep -q libx265 \
 && groupadd --system --gid 10001 hevc \
 && useradd --system --uid 10001 --gid hevc --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin hevc
COPY --from=build /out/result-downloader /usr/local/bin/result-downloader
USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["/usr/local/bin/result-downloader"]
