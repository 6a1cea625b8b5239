module github.com/hevc-encoder/hevc-encoder/deployments/local

go 1.26.8

require (
	github.com/hevc-encoder/hevc-encoder/pkg v0.0.0
	github.com/hevc-encoder/hevc-encoder/services/hevc-processor v0.0.0
	github.com/hevc-encoder/hevc-encoder/services/result-downloader v0.0.0
	github.com/hevc-encoder/hevc-encoder/services/s3-uploader v0.0.0
	github.com/hevc-encoder/hevc-encoder/services/sqs-dispatcher v0.0.0
)

replace github.com/hevc-encoder/hevc-encoder/services/hevc-processor => ../../services/hevc-processor

replace github.com/hevc-encoder/hevc-encoder/services/result-downloader => ../../services/result-downloader

replace github.com/hevc-encoder/hevc-encoder/services/s3-uploader => ../../services/s3-uploader

replace github.com/hevc-encoder/hevc-encoder/services/sqs-dispatcher => ../../services/sqs-dispatcher

replace github.com/hevc-encoder/hevc-encoder/pkg => ../../pkg
