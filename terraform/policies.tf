# Every resource policy and IAM policy of the stack, as JSON built here (not
# with aws_iam_policy_document) so that `terraform test` can read the
# rendered documents in a plan, and the Go test in deployments/deploytest
# can read them from the HCL.
#
# Least privilege, one identity per service:
#   execution role  - ECS agent for processor tasks: pull the image, write
#                     the processor's logs
#   dispatcher      - its own execution role (the dispatcher's logs), and a
#     execution       task role; see below
#   processor role  - get/delete TODO/*, put DONE/*, FAILED/* and its cost
#                     record COSTS/*, heartbeat and delete its work message
#                     (plus s3:ListBucket, so a missing key is a 404, not a
#                     403)
#   dispatcher      - receive/delete/heartbeat work messages, head/list the
#                     bucket, read COSTS/* (BUDGET_USD), delete TODO/* of
#                     finished jobs, RunTask of the
#                     processor task definition on this cluster only, and
#                     PassRole of the processor's task role and of the
#                     processor's execution role only (never of its own
#                     roles: RunTask sends no role overrides, and a role it
#                     cannot pass cannot be put into an override either)
#   s3-uploader     - put TODO/*, read FAILED/* records, head DONE/*
#   result-         - get/delete DONE/*, consume the results queue
#     downloader
#   trigger         - list the bucket, send to the work queue, redrive the
#                     work DLQ; also status (queue depths, FAILED/ reasons,
#                     the month's cost from COSTS/)
#   home (shared)   - all three at once, for a home server whose services
#                     share one key (create_shared_home_user)
# Resource "*" appears only where AWS offers no resource-level permission
# (ecr:GetAuthorizationToken) or scopes by condition (ecs:ListTasks, limited
# to this cluster with ecs:cluster).

locals {
  bucket_arn     = aws_s3_bucket.this.arn
  todo_objects   = "${aws_s3_bucket.this.arn}/${local.todo_prefix}*"
  done_objects   = "${aws_s3_bucket.this.arn}/${local.done_prefix}*"
  failed_objects = "${aws_s3_bucket.this.arn}/${local.failed_prefix}*"
  cost_objects   = "${aws_s3_bucket.this.arn}/${local.costs_prefix}*"

  deny_insecure_transport = {
    Sid       = "DenyInsecureTransport"
    Effect    = "Deny"
    Principal = "*"
    Condition = { Bool = { "aws:SecureTransport" = "false" } }
  }

  # --- resource policies ---------------------------------------------------

  bucket_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      merge(local.deny_insecure_transport, {
        Action   = "s3:*"
        Resource = [local.bucket_arn, "${local.bucket_arn}/*"]
      }),
      {
        Sid       = "DenyOutdatedTLS"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [local.bucket_arn, "${local.bucket_arn}/*"]
        Condition = { NumericLessThan = { "s3:TlsVersion" = "1.2" } }
      },
    ]
  })

  # Only this bucket (in this account) may send S3 events; nobody may talk to
  # the queues without TLS. IAM principals of this account get their access
  # from their own IAM policies below.
  work_queue_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AllowBucketNotifications"
        Effect    = "Allow"
        Principal = { Service = "s3.amazonaws.com" }
        Action    = "sqs:SendMessage"
        Resource  = aws_sqs_queue.work.arn
        Condition = {
          ArnEquals    = { "aws:SourceArn" = local.bucket_arn }
          StringEquals = { "aws:SourceAccount" = local.account_id }
        }
      },
      merge(local.deny_insecure_transport, { Action = "sqs:*", Resource = aws_sqs_queue.work.arn }),
    ]
  })

  results_queue_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AllowBucketNotifications"
        Effect    = "Allow"
        Principal = { Service = "s3.amazonaws.com" }
        Action    = "sqs:SendMessage"
        Resource  = aws_sqs_queue.results.arn
        Condition = {
          ArnEquals    = { "aws:SourceArn" = local.bucket_arn }
          StringEquals = { "aws:SourceAccount" = local.account_id }
        }
      },
      merge(local.deny_insecure_transport, { Action = "sqs:*", Resource = aws_sqs_queue.results.arn }),
    ]
  })

  work_dlq_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [merge(local.deny_insecure_transport, { Action = "sqs:*", Resource = aws_sqs_queue.work_dlq.arn })]
  })

  results_dlq_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [merge(local.deny_insecure_transport, { Action = "sqs:*", Resource = aws_sqs_queue.results_dlq.arn })]
  })

  alarms_topic_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AllowCloudWatchAlarms"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = "sns:Publish"
        Resource  = aws_sns_topic.alarms.arn
        Condition = {
          ArnLike = { "aws:SourceArn" = "arn:${local.partition}:cloudwatch:${var.aws_region}:${local.account_id}:alarm:${var.name}-*" }
        }
      },
      {
        Sid       = "AllowAccountManagement"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = ["sns:GetTopicAttributes", "sns:SetTopicAttributes", "sns:Subscribe", "sns:ListSubscriptionsByTopic", "sns:Publish"]
        Resource  = aws_sns_topic.alarms.arn
      },
      merge(local.deny_insecure_transport, { Action = "sns:Publish", Resource = aws_sns_topic.alarms.arn }),
    ]
  })

  ecs_tasks_assume_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ecs-tasks.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = {
        ArnLike      = { "aws:SourceArn" = "arn:${local.partition}:ecs:${var.aws_region}:${local.account_id}:*" }
        StringEquals = { "aws:SourceAccount" = local.account_id }
      }
    }]
  })

  # --- identity policies ---------------------------------------------------

  kms_statements = [for s in [{
    Sid      = "BucketKey"
    Effect   = "Allow"
    Action   = ["kms:Decrypt", "kms:GenerateDataKey"]
    Resource = local.kms_key_arns
  }] : s if length(local.kms_key_arns) > 0]

  # For identities that only read objects.
  kms_read_statements = [for s in [{
    Sid      = "BucketKeyRead"
    Effect   = "Allow"
    Action   = "kms:Decrypt"
    Resource = local.kms_key_arns
  }] : s if length(local.kms_key_arns) > 0]

  # Image pulls, shared by both execution roles.
  pull_statements = concat(
    [for s in [
      {
        # GetAuthorizationToken has no resource-level permissions.
        Sid      = "EcrAuthToken"
        Effect   = "Allow"
        Action   = "ecr:GetAuthorizationToken"
        Resource = "*"
      },
      {
        Sid      = "EcrPull"
        Effect   = "Allow"
        Action   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
        Resource = var.ecr_repository_arns
      },
    ] : s if length(var.ecr_repository_arns) > 0],
    [for s in [{
      Sid      = "PrivateRegistryCredentials"
      Effect   = "Allow"
      Action   = "secretsmanager:GetSecretValue"
      Resource = var.repository_credentials_secret_arn
    }] : s if var.repository_credentials_secret_arn != null],
  )

  # Each execution role writes the logs of its own tasks only.
  task_logs_statement = {
    Sid    = "WriteTaskLogs"
    Effect = "Allow"
    Action = ["logs:CreateLogStream", "logs:PutLogEvents"]
  }

  # The processor tasks' execution role. The dispatcher may pass it (ECS
  # needs that for RunTask); it can write nothing but the processor's logs,
  # so a task given it as its task role could do no harm.
  execution_policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [merge(local.task_logs_statement, { Resource = "${aws_cloudwatch_log_group.processor.arn}:*" })],
      local.pull_statements,
    )
  })

  # The dispatcher service's execution role: its own, so that the roles the
  # dispatcher may pass never include one of its own.
  dispatcher_execution_policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [merge(local.task_logs_statement, { Resource = [for g in aws_cloudwatch_log_group.dispatcher : "${g.arn}:*"] })],
      local.pull_statements,
    )
  })

  processor_policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat([
      {
        # Without s3:ListBucket, S3 answers 403 instead of 404 for a missing
        # key, and a job whose input is already gone would look like a
        # permission error and be retried until it dead-letters.
        Sid      = "TellMissingFromDenied"
        Effect   = "Allow"
        Action   = "s3:ListBucket"
        Resource = local.bucket_arn
      },
      {
        Sid      = "ReadAndRemoveWork"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:DeleteObject"]
        Resource = local.todo_objects
      },
      {
        Sid      = "WriteResultsAndFailures"
        Effect   = "Allow"
        Action   = ["s3:PutObject", "s3:AbortMultipartUpload"]
        Resource = [local.done_objects, local.failed_objects]
      },
      {
        # One small record per job: its vCPU- and GB-seconds and result
        # size, for the month's cost estimate (status, BUDGET_USD).
        Sid      = "WriteCostRecords"
        Effect   = "Allow"
        Action   = "s3:PutObject"
        Resource = local.cost_objects
      },
      {
        Sid      = "HeartbeatAndAckWork"
        Effect   = "Allow"
        Action   = ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage"]
        Resource = aws_sqs_queue.work.arn
      },
    ], local.kms_statements)
  })

  # The statements that several of the identity policies below share, each
  # written once; a policy lists the ones it needs (a Sid is unique within
  # each policy).
  shared_statements = {
    # The dispatcher lists TODO/; the uploader FAILED/; the downloader DONE/
    # (at start and every RECONCILE_INTERVAL); trigger TODO/ and DONE/ (to
    # skip what has a result); status counts TODO/, DONE/ and FAILED/.
    # ListBucket also makes HeadObject of a missing key answer 404 instead
    # of 403.
    list_bucket = {
      Sid      = "ListBucket"
      Effect   = "Allow"
      Action   = "s3:ListBucket"
      Resource = local.bucket_arn
    }
    # Upload work; HeadObject (s3:GetObject) to skip what is queued.
    upload_work = {
      Sid      = "UploadWork"
      Effect   = "Allow"
      Action   = ["s3:PutObject", "s3:AbortMultipartUpload", "s3:GetObject"]
      Resource = local.todo_objects
    }
    download_results = {
      Sid      = "DownloadResults"
      Effect   = "Allow"
      Action   = ["s3:GetObject", "s3:DeleteObject"]
      Resource = local.done_objects
    }
    # The month's cost estimate (status; the dispatcher's BUDGET_USD) sums
    # the COSTS/ listing, and reads a record whose key does not carry its
    # figures.
    read_cost_records = {
      Sid      = "ReadCostRecords"
      Effect   = "Allow"
      Action   = "s3:GetObject"
      Resource = local.cost_objects
    }
    # status shows why a file failed.
    read_failures = {
      Sid      = "ReadFailures"
      Effect   = "Allow"
      Action   = "s3:GetObject"
      Resource = local.failed_objects
    }
    consume_results = {
      Sid      = "ConsumeResults"
      Effect   = "Allow"
      Action   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
      Resource = aws_sqs_queue.results.arn
    }
    # trigger re-queues TODO/ objects (and redrives into this queue);
    # status reads the depth.
    trigger_work = {
      Sid      = "TriggerWork"
      Effect   = "Allow"
      Action   = ["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
      Resource = aws_sqs_queue.work.arn
    }
    # The dispatcher follows its tasks; trigger skips keys in flight; status
    # counts running tasks.
    describe_cluster_tasks = {
      Sid      = "DescribeClusterTasks"
      Effect   = "Allow"
      Action   = "ecs:DescribeTasks"
      Resource = local.cluster_tasks_arn
    }
    # ListTasks has no task ARN to scope to; the condition limits it to this
    # cluster.
    list_cluster_tasks = {
      Sid       = "ListClusterTasks"
      Effect    = "Allow"
      Action    = "ecs:ListTasks"
      Resource  = "*"
      Condition = { ArnEquals = { "ecs:cluster" = local.cluster_arn } }
    }
  }

  dispatcher_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # SendMessage: a message of several records is split into one per
        # record, and the reconcile re-queues TODO/ objects whose
        # notification was lost.
        Sid      = "ConsumeWork"
        Effect   = "Allow"
        Action   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"]
        Resource = aws_sqs_queue.work.arn
      },
      local.shared_statements.list_bucket,
      local.shared_statements.read_cost_records,
      {
        # HeadObject needs s3:GetObject: is the result already there, does
        # the work object still exist?
        Sid      = "HeadWorkAndResults"
        Effect   = "Allow"
        Action   = "s3:GetObject"
        Resource = [local.todo_objects, local.done_objects]
      },
      {
        # A job whose result already exists: its TODO/ object is removed.
        Sid      = "RemoveFinishedWork"
        Effect   = "Allow"
        Action   = "s3:DeleteObject"
        Resource = local.todo_objects
      },
      {
        Sid       = "RunProcessorTasks"
        Effect    = "Allow"
        Action    = "ecs:RunTask"
        Resource  = local.processor_task_definition_arn_any
        Condition = { ArnEquals = { "ecs:cluster" = local.cluster_arn } }
      },
      {
        # RunTask with tags (the job's key) needs TagResource on the task.
        Sid       = "TagProcessorTasks"
        Effect    = "Allow"
        Action    = "ecs:TagResource"
        Resource  = local.cluster_tasks_arn
        Condition = { StringEquals = { "ecs:CreateAction" = "RunTask" } }
      },
      local.shared_statements.describe_cluster_tasks,
      local.shared_statements.list_cluster_tasks,
      {
        # The start-up check: ECS_CLUSTER exists (a typo fails at start, not
        # at the first RunTask).
        Sid      = "CheckCluster"
        Effect   = "Allow"
        Action   = "ecs:DescribeClusters"
        Resource = local.cluster_arn
      },
      {
        # The start-up check: ECS_TASK_DEFINITION exists and has the
        # processor's container. AWS offers no resource-level permission for
        # DescribeTaskDefinition, and it reads nothing secret.
        Sid      = "CheckTaskDefinition"
        Effect   = "Allow"
        Action   = "ecs:DescribeTaskDefinition"
        Resource = "*"
      },
      {
        # RunTask passes the roles of the task definition: the processor's
        # task role and its execution role, nothing else (not the
        # dispatcher's own roles).
        Sid       = "PassProcessorRoles"
        Effect    = "Allow"
        Action    = "iam:PassRole"
        Resource  = [aws_iam_role.processor.arn, aws_iam_role.execution.arn]
        Condition = { StringEquals = { "iam:PassedToService" = "ecs-tasks.amazonaws.com" } }
      },
    ]
  })

  # s3-uploader: queue work, skip what is queued, done or failed.
  uploader_policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat([
      local.shared_statements.list_bucket,
      local.shared_statements.upload_work,
      {
        # Failure records (skip files that failed as they are now), and
        # HeadObject of DONE/ keys (a result of this file is waiting): S3
        # has no head-only permission.
        Sid      = "ReadFailuresAndHeadResults"
        Effect   = "Allow"
        Action   = "s3:GetObject"
        Resource = [local.failed_objects, local.done_objects]
      },
    ], local.kms_statements)
  })

  # result-downloader: bring results home and remove them from DONE/.
  downloader_policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat([
      local.shared_statements.list_bucket,
      local.shared_statements.download_results,
      local.shared_statements.consume_results,
    ], local.kms_read_statements)
  })

  # trigger (re-queue TODO/, --redrive the work DLQ) and status.
  trigger_policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat([
      local.shared_statements.list_bucket,
      local.shared_statements.read_failures,
      local.shared_statements.read_cost_records,
      local.shared_statements.trigger_work,
      {
        # trigger --redrive: receive from the work DLQ, send to the work
        # queue, then delete from the DLQ.
        Sid      = "RedriveWork"
        Effect   = "Allow"
        Action   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
        Resource = aws_sqs_queue.work_dlq.arn
      },
      {
        # status reads the depths of the results queue and its DLQ.
        Sid      = "ResultsDepth"
        Effect   = "Allow"
        Action   = ["sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
        Resource = [aws_sqs_queue.results.arn, aws_sqs_queue.results_dlq.arn]
      },
      local.shared_statements.describe_cluster_tasks,
      local.shared_statements.list_cluster_tasks,
    ], local.kms_read_statements)
  })

  # All of the home services under one key (uploader, downloader, trigger,
  # status, process): for a home server whose services share one
  # credentials file (create_shared_home_user), or to attach to an
  # identity of your own.
  home_policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat([
      local.shared_statements.list_bucket,
      local.shared_statements.upload_work,
      local.shared_statements.download_results,
      local.shared_statements.read_failures,
      local.shared_statements.read_cost_records,
      local.shared_statements.consume_results,
      local.shared_statements.trigger_work,
      {
        # trigger --redrive moves dead letters back; status reads the depth.
        Sid      = "RedriveDeadLetters"
        Effect   = "Allow"
        Action   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:StartMessageMoveTask", "sqs:ListMessageMoveTasks"]
        Resource = [aws_sqs_queue.work_dlq.arn, aws_sqs_queue.results_dlq.arn]
      },
      local.shared_statements.describe_cluster_tasks,
      local.shared_statements.list_cluster_tasks,
    ], local.kms_statements)
  })
}
