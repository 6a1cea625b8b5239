module github.com/hevc-encoder/hevc-encoder/services/result-downloader

go 1.26.8

require (
	github.com/hevc-encoder/hevc-encoder/pkg v0.0.0
	github.com/hevc-encoder/hevc-encoder/services/s3-uploader v0.0.0
)

replace github.com/hevc-encoder/hevc-encoder/pkg => ../../pkg

replace github.com/hevc-encoder/hevc-encoder/services/s3-uploader => ../s3-uploader
