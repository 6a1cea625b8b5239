module github.com/hevc-encoder/hevc-encoder/scripts/portainer-run

go 1.26.8
