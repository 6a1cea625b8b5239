module github.com/hevc-encoder/hevc-encoder/services/nextcloud-syncer

go 1.26.8

require (
	github.com/hevc-encoder/hevc-encoder/pkg v0.0.0
	github.com/rs/zerolog v1.35.1
	github.com/studio-b12/gowebdav v0.13.0
	golang.org/x/net v0.62.0
	golang.org/x/sys v0.50.0
)

require (
	github.com/mattn/go-colorable v0.1.14 // indirect
	github.com/mattn/go-isatty v0.0.20 // indirect
)

replace github.com/hevc-encoder/hevc-encoder/pkg => ../../pkg
