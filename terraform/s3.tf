resource "aws_s3_bucket" "this" {
  bucket        = var.bucket_name
  force_destroy = var.bucket_force_destroy
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket = aws_s3_bucket.this.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# ACLs are disabled: the bucket owner owns every object.
resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = var.s3_encryption == "SSE-KMS" ? "aws:kms" : "AES256"
      # null with SSE-KMS: the AWS-managed key aws/s3.
      kms_master_key_id = var.s3_encryption == "SSE-KMS" ? var.kms_key_arn : null
    }
    bucket_key_enabled = var.s3_encryption == "SSE-KMS"
  }
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id
  policy = local.bucket_policy

  # A bucket policy cannot be written while the public access block is being
  # changed; order them.
  depends_on = [aws_s3_bucket_public_access_block.this]
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_multipart_days
    }
  }

  rule {
    id     = "expire-todo"
    status = "Enabled"

    filter {
      prefix = local.todo_prefix
    }

    expiration {
      days = var.todo_expiration_days
    }
  }

  rule {
    id     = "expire-done"
    status = "Enabled"

    filter {
      prefix = local.done_prefix
    }

    expiration {
      days = var.done_expiration_days
    }
  }

  rule {
    id     = "expire-failed"
    status = "Enabled"

    filter {
      prefix = local.failed_prefix
    }

    expiration {
      days = var.failed_expiration_days
    }
  }

  # Cost records are summed per calendar month; a year and a bit keeps
  # last year's months for comparison.
  rule {
    id     = "expire-costs"
    status = "Enabled"

    filter {
      prefix = local.costs_prefix
    }

    expiration {
      days = var.cost_records_expiration_days
    }
  }
}

# ObjectCreated on TODO/*.mp4 -> work queue; on DONE/*.mp4 -> results
# queue (a.mp4's result is DONE/a-hevc.mp4, a.MP4's DONE/a-hevc-MP4.mp4; see
# pkg/library). FAILED/ notifies nobody.
resource "aws_s3_bucket_notification" "this" {
  bucket = aws_s3_bucket.this.id

  dynamic "queue" {
    for_each = toset(var.work_suffixes)
    content {
      id            = "work${replace(queue.value, ".", "-")}"
      queue_arn     = aws_sqs_queue.work.arn
      events        = ["s3:ObjectCreated:*"]
      filter_prefix = local.todo_prefix
      filter_suffix = queue.value
    }
  }

  queue {
    id            = "results"
    queue_arn     = aws_sqs_queue.results.arn
    events        = ["s3:ObjectCreated:*"]
    filter_prefix = local.done_prefix
    filter_suffix = local.result_suffix
  }

  # S3 validates the destinations when the configuration is written: the
  # queue policies must already let the bucket send.
  depends_on = [
    aws_sqs_queue_policy.work,
    aws_sqs_queue_policy.results,
  ]
}
