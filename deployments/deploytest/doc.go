// Package deploytest checks the deployment side of hevc-encoder against the
// code, with no Docker engine, no AWS account and no Portainer:
//
//   - terraform/: `terraform fmt`, `terraform validate` and `terraform test`
//     (mocked AWS provider, from a local provider mirror), and a static
//     reading of the HCL (hashicorp/hcl/v2) that fails when the
//     infrastructure and the code disagree: bucket key layout vs
//     pkg/library, the processor's and dispatcher's environment vs the
//     variables those programs read, queue visibility vs heartbeat, IAM
//     wildcards, variable descriptions.
//   - deployments/docker/: every service cross-compiles for linux/arm64 and
//     linux/amd64 with the exact `go build` line of its Dockerfile, into a
//     static binary; each Dockerfile is parsed and its stages, COPY
//     sources, bind mounts, user and base images checked.
//   - deployments/portainer/: the stack files load with the compose-spec
//     loader and use secrets only through *_FILE.
//   - scripts/portainer-run: run against a fake Portainer HTTP server that
//     checks every request.
//
// Run with `make deploy-test`, or `GOWORK=off go test ./...` here.
package deploytest
