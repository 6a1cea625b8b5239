# Every image, multi-arch, in one command from the repository root:
#   docker buildx bake -f deployments/docker/docker-bake.hcl --push
#   REGISTRY=<your-registry>/hevc-encoder TAG=1.0.0 docker buildx bake -f deployments/docker/docker-bake.hcl --push
# (`make images` runs this.) Without --push, a multi-platform build stays in
# the build cache; use --set '*.platform=linux/amd64' --load for a local test.

variable "REGISTRY" {
  default = ""
}

variable "TAG" {
  default = "dev"
}

group "default" {
  targets = ["nextcloud-syncer", "s3-uploader", "sqs-dispatcher", "hevc-processor", "result-downloader"]
}

target "_common" {
  context   = "."
  platforms = ["linux/amd64", "linux/arm64"]
  labels = {
    "org.opencontainers.image.source"  = "https://github.com/hevc-encoder/hevc-encoder"
    "org.opencontainers.image.version" = "${TAG}"
  }
}

target "nextcloud-syncer" {
  inherits   = ["_common"]
  dockerfile = "deployments/docker/nextcloud-syncer.Dockerfile"
  tags       = ["${REGISTRY}/nextcloud-syncer:${TAG}"]
}

target "s3-uploader" {
  inherits   = ["_common"]
  dockerfile = "deployments/docker/s3-uploader.Dockerfile"
  tags       = ["${REGISTRY}/s3-uploader:${TAG}"]
}

target "sqs-dispatcher" {
  inherits   = ["_common"]
  dockerfile = "deployments/docker/sqs-dispatcher.Dockerfile"
  tags       = ["${REGISTRY}/sqs-dispatcher:${TAG}"]
}

target "hevc-processor" {
  inherits   = ["_common"]
  dockerfile = "deployments/docker/hevc-processor.Dockerfile"
  tags       = ["${REGISTRY}/hevc-processor:${TAG}"]
}

target "result-downloader" {
  inherits   = ["_common"]
  dockerfile = "deployments/docker/result-downloader.Dockerfile"
  tags       = ["${REGISTRY}/result-downloader:${TAG}"]
}
