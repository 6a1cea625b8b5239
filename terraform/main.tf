data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  # Key layout of the bucket. These literals must equal the constants in
  # pkg/library (TodoPrefix, DonePrefix, FailedPrefix, HevcSuffix); the
  # deployments/deploytest test fails when they drift apart.
  todo_prefix   = "TODO/"
  done_prefix   = "DONE/"
  failed_prefix = "FAILED/"
  # Each processor task's cost record (pkg/cost.Prefix): summed for the
  # month's estimate, status and BUDGET_USD.
  costs_prefix = "COSTS/"
  hevc_suffix  = "-hevc.mp4"
  # Every result ends in lower-case .mp4 (-hevc.mp4, or -hevc-MP4.mp4 for an
  # original spelled .MP4), so one results rule covers them all.
  result_suffix = ".mp4"

  cluster_name = var.create_ecs_cluster ? coalesce(var.ecs_cluster_name, var.name) : var.ecs_cluster_name
  cluster_arn  = var.create_ecs_cluster ? aws_ecs_cluster.this[0].arn : "arn:${local.partition}:ecs:${var.aws_region}:${local.account_id}:cluster/${var.ecs_cluster_name}"

  processor_family         = "${var.name}-hevc-processor"
  processor_container_name = "hevc-processor"
  dispatcher_family        = "${var.name}-sqs-dispatcher"
  dispatcher_on_ecs        = var.dispatcher_mode == "ecs"

  # ARNs that IAM policies scope to (task definitions of any revision; tasks
  # of this cluster only).
  processor_task_definition_arn_any = "arn:${local.partition}:ecs:${var.aws_region}:${local.account_id}:task-definition/${local.processor_family}:*"
  cluster_tasks_arn                 = "arn:${local.partition}:ecs:${var.aws_region}:${local.account_id}:task/${local.cluster_name}/*"

  kms_key_arns = var.s3_encryption == "SSE-KMS" && var.kms_key_arn != null ? [var.kms_key_arn] : []
}

# Fail the plan, not the apply, when variables contradict each other.
resource "terraform_data" "checks" {
  input = var.name

  lifecycle {
    precondition {
      condition     = var.work_visibility_timeout_seconds >= 2 * var.processor_heartbeat_interval_seconds
      error_message = "work_visibility_timeout_seconds must be at least twice processor_heartbeat_interval_seconds, or a single late heartbeat lets SQS hand a running job to a second task."
    }
    precondition {
      condition     = var.create_ecs_cluster || var.ecs_cluster_name != null
      error_message = "ecs_cluster_name is required when create_ecs_cluster = false."
    }
    precondition {
      condition     = var.dispatcher_mode != "ecs" || var.dispatcher_image != null
      error_message = "dispatcher_image is required when dispatcher_mode = ecs."
    }
    precondition {
      condition     = var.kms_key_arn == null || var.s3_encryption == "SSE-KMS"
      error_message = "kms_key_arn is only used with s3_encryption = SSE-KMS."
    }
  }
}
