# hevc-encoder: `make run` converts demo clips (or INPUT=dir) on this machine;
# `make test` runs every module's tests. Both install what they need.
SHELL := /bin/bash
GO ?= go
# Tests, tools and the deployment checks' cross-compiles build the same way
# (static, trimmed paths), so they share one build cache: a cold `make test`
# compiles the dependency tree once per architecture, not three times.
export CGO_ENABLED := 0
export GOFLAGS := -trimpath -buildvcs=false
# Every module of the workspace (a bare `go test ./...` at the root sees none).
MODULES = $(shell $(GO) list -m -f '{{.Dir}}')

.PHONY: run test vet lint bench build deps clean-demo help

help:
	@echo "make run [INPUT=dir]   convert demo clips (or your library, in place) on this machine"
	@echo "make test              every module's tests, the images and the stack with podman"
	@echo "                       (installs ffmpeg, MinIO, local-aws-sqs, rclone, podman and base images)"
	@echo "make images-test [PLATFORMS=linux/arm64]   build and check the images alone"
	@echo "make bench [QUICK=1]   benchmarks side by side; writes bench/results.md"
	@echo "make build             build every service binary into bin/"

run:
	@scripts/deps.sh ffmpeg
	INPUT="$(INPUT)" $(GO) run ./deployments/local

test: vet lint
	@scripts/deps.sh test
	@scripts/test-modules.sh "$(GO)" $(MODULES)
	@echo "== deployment checks"; $(MAKE) --no-print-directory deploy-test

vet:
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) vet ./...); done
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null; git ls-files --others --exclude-standard '*.go' 2>/dev/null))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }

# staticcheck, pinned, fetched from the module proxy on first use.
STATICCHECK = honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) run $(STATICCHECK) ./...); done

build:
	@mkdir -p bin
	@set -e; for s in services/*/; do n=$$(basename $$s); (cd $$s && CGO_ENABLED=0 $(GO) build -o $(CURDIR)/bin/$$n .); done
	@echo "built: $$(ls bin | tr '\n' ' ')"

clean-demo:
	rm -rf demo-library

-include deployments/make.inc
-include bench/make.inc
