# Work queue: S3 ObjectCreated on TODO/*.mp4, consumed by sqs-dispatcher; the
# processor keeps its message invisible with heartbeats and deletes it when
# done. Results queue: ObjectCreated on DONE/, consumed by result-downloader.

resource "aws_sqs_queue" "work_dlq" {
  name                      = "${var.name}-work-dlq"
  message_retention_seconds = var.message_retention_seconds
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue" "work" {
  name                       = "${var.name}-work"
  visibility_timeout_seconds = var.work_visibility_timeout_seconds
  message_retention_seconds  = var.message_retention_seconds
  receive_wait_time_seconds  = 20
  sqs_managed_sse_enabled    = true

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.work_dlq.arn
    maxReceiveCount     = var.max_receive_count
  })

  lifecycle {
    precondition {
      condition     = var.work_visibility_timeout_seconds >= 2 * var.processor_heartbeat_interval_seconds
      error_message = "The work queue's visibility timeout must be at least twice the processor heartbeat interval."
    }
  }
}

resource "aws_sqs_queue_redrive_allow_policy" "work_dlq" {
  queue_url = aws_sqs_queue.work_dlq.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.work.arn]
  })
}

resource "aws_sqs_queue" "results_dlq" {
  name                      = "${var.name}-results-dlq"
  message_retention_seconds = var.message_retention_seconds
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue" "results" {
  name                       = "${var.name}-results"
  visibility_timeout_seconds = var.results_visibility_timeout_seconds
  message_retention_seconds  = var.message_retention_seconds
  receive_wait_time_seconds  = 20
  sqs_managed_sse_enabled    = true

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.results_dlq.arn
    maxReceiveCount     = var.max_receive_count
  })
}

resource "aws_sqs_queue_redrive_allow_policy" "results_dlq" {
  queue_url = aws_sqs_queue.results_dlq.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.results.arn]
  })
}

resource "aws_sqs_queue_policy" "work" {
  queue_url = aws_sqs_queue.work.id
  policy    = local.work_queue_policy
}

resource "aws_sqs_queue_policy" "results" {
  queue_url = aws_sqs_queue.results.id
  policy    = local.results_queue_policy
}

resource "aws_sqs_queue_policy" "work_dlq" {
  queue_url = aws_sqs_queue.work_dlq.id
  policy    = local.work_dlq_policy
}

resource "aws_sqs_queue_policy" "results_dlq" {
  queue_url = aws_sqs_queue.results_dlq.id
  policy    = local.results_dlq_policy
}
