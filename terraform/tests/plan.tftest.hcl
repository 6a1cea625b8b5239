# `terraform test` with a mocked AWS provider: plans the configuration with
# no AWS account and no network, and checks what the plan would create.
# Run: terraform init -backend=false && terraform test
# (deployments/deploytest runs it with the provider from a local mirror).

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }

  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }

  mock_data "aws_vpc" {
    defaults = {
      id = "vpc-0123456789abcdef0"
    }
  }

  mock_data "aws_subnets" {
    defaults = {
      ids = ["subnet-0bbbbbbbbbbbbbbbb", "subnet-0aaaaaaaaaaaaaaaa"]
    }
  }

  mock_resource "aws_sqs_queue" {
    defaults = {
      arn = "arn:aws:sqs:eu-central-1:123456789012:mock"
      url = "https://sqs.eu-central-1.amazonaws.com/123456789012/mock"
    }
  }

  mock_resource "aws_s3_bucket" {
    defaults = {
      arn = "arn:aws:s3:::my-hevc-bucket"
    }
  }

  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/mock"
    }
  }

  mock_resource "aws_ecs_cluster" {
    defaults = {
      arn = "arn:aws:ecs:eu-central-1:123456789012:cluster/hevc-encoder"
    }
  }

  mock_resource "aws_sns_topic" {
    defaults = {
      arn = "arn:aws:sns:eu-central-1:123456789012:hevc-encoder-alarms"
    }
  }

  mock_resource "aws_cloudwatch_log_group" {
    defaults = {
      arn = "arn:aws:logs:eu-central-1:123456789012:log-group:mock"
    }
  }
}

override_resource {
  target = aws_sqs_queue.work
  values = {
    arn = "arn:aws:sqs:eu-central-1:123456789012:hevc-encoder-work"
    url = "https://sqs.eu-central-1.amazonaws.com/123456789012/hevc-encoder-work"
  }
}

override_resource {
  target = aws_sqs_queue.results
  values = {
    arn = "arn:aws:sqs:eu-central-1:123456789012:hevc-encoder-results"
    url = "https://sqs.eu-central-1.amazonaws.com/123456789012/hevc-encoder-results"
  }
}

override_resource {
  target = aws_iam_role.processor
  values = {
    arn = "arn:aws:iam::123456789012:role/hevc-encoder-hevc-processor"
  }
}

override_resource {
  target = aws_iam_role.execution
  values = {
    arn = "arn:aws:iam::123456789012:role/hevc-encoder-ecs-execution"
  }
}

override_resource {
  target = aws_iam_role.dispatcher_execution
  values = {
    arn = "arn:aws:iam::123456789012:role/hevc-encoder-sqs-dispatcher-execution"
  }
}

override_resource {
  target = aws_iam_role.dispatcher
  values = {
    arn = "arn:aws:iam::123456789012:role/hevc-encoder-sqs-dispatcher"
  }
}

variables {
  aws_region       = "eu-central-1"
  bucket_name      = "my-hevc-bucket"
  processor_image  = "registry.invalid/hevc-encoder/hevc-processor:1.0.0"
  dispatcher_image = "registry.invalid/hevc-encoder/sqs-dispatcher:1.0.0"
}

run "defaults_are_safe" {
  command = apply

  assert {
    condition = alltrue([
      aws_s3_bucket_public_access_block.this.block_public_acls,
      aws_s3_bucket_public_access_block.this.block_public_policy,
      aws_s3_bucket_public_access_block.this.ignore_public_acls,
      aws_s3_bucket_public_access_block.this.restrict_public_buckets,
    ])
    error_message = "The public access block must have all four settings on."
  }

  assert {
    condition     = one(aws_s3_bucket_ownership_controls.this.rule).object_ownership == "BucketOwnerEnforced"
    error_message = "Object ownership must be BucketOwnerEnforced (ACLs disabled)."
  }

  assert {
    condition     = one(one(aws_s3_bucket_server_side_encryption_configuration.this.rule).apply_server_side_encryption_by_default).sse_algorithm == "aws:kms"
    error_message = "The default encryption must be SSE-KMS."
  }

  assert {
    condition     = one(aws_s3_bucket_server_side_encryption_configuration.this.rule).bucket_key_enabled
    error_message = "SSE-KMS must use an S3 bucket key."
  }

  assert {
    condition = {
      for r in aws_s3_bucket_lifecycle_configuration.this.rule :
      r.id => try(one(r.expiration).days, one(r.abort_incomplete_multipart_upload).days_after_initiation)
      } == {
      "abort-incomplete-multipart-uploads" = 1
      "expire-todo"                        = 7
      "expire-done"                        = 14
      "expire-failed"                      = 30
      "expire-costs"                       = 400
    }
    error_message = "Lifecycle defaults must be: abort multipart after 1 day, TODO/ 7, DONE/ 14, FAILED/ 30, COSTS/ 400 days."
  }

  assert {
    condition = {
      for e in jsondecode(aws_ecs_task_definition.processor.container_definitions)[0].environment : e.name => e.value
      if startswith(e.name, "TASK_")
    } == { TASK_VCPU = "4", TASK_MEMORY_GIB = "8" }
    error_message = "The processor's environment must carry the task size (4 vCPU, 8 GiB by default) for its cost records."
  }

  assert {
    condition     = output.dispatcher_env.BUDGET_USD == "0" && !contains(keys(output.dispatcher_env), "FARGATE_SPOT_VCPU_HOUR")
    error_message = "No budget by default, and the dispatcher's own dated prices."
  }

  assert {
    condition = toset([
      for q in aws_s3_bucket_notification.this.queue : "${q.filter_prefix}|${q.filter_suffix}"
    ]) == toset(["TODO/|.mp4", "TODO/|.MP4", "DONE/|.mp4"])
    error_message = "Notifications must be TODO/ + .mp4/.MP4 and DONE/ + .mp4 (results of .MP4 originals end in -hevc-MP4.mp4)."
  }

  assert {
    condition     = aws_sqs_queue.work.visibility_timeout_seconds >= 2 * var.processor_heartbeat_interval_seconds
    error_message = "The work queue visibility timeout must be at least twice the heartbeat interval."
  }

  assert {
    condition     = aws_sqs_queue.work.receive_wait_time_seconds == 20 && aws_sqs_queue.results.receive_wait_time_seconds == 20
    error_message = "Both queues must long-poll (20 s)."
  }

  assert {
    condition = alltrue([
      aws_sqs_queue.work.sqs_managed_sse_enabled,
      aws_sqs_queue.work_dlq.sqs_managed_sse_enabled,
      aws_sqs_queue.results.sqs_managed_sse_enabled,
      aws_sqs_queue.results_dlq.sqs_managed_sse_enabled,
    ])
    error_message = "Every queue must use SQS-managed encryption."
  }

  assert {
    condition     = jsondecode(aws_sqs_queue.work.redrive_policy).maxReceiveCount == 5
    error_message = "maxReceiveCount must default to 5."
  }

  assert {
    condition     = one(aws_ecs_task_definition.processor.runtime_platform).cpu_architecture == "ARM64"
    error_message = "The processor must default to ARM64."
  }

  assert {
    condition     = one(aws_ecs_task_definition.processor.ephemeral_storage).size_in_gib == 50
    error_message = "Ephemeral storage must default to 50 GiB."
  }

  assert {
    condition = {
      for e in jsondecode(aws_ecs_task_definition.processor.container_definitions)[0].environment : e.name => e.value
      if contains(["HEARTBEAT_INTERVAL", "VISIBILITY_TIMEOUT", "STORAGE", "QUEUE"], e.name)
      } == {
      HEARTBEAT_INTERVAL = "60s"
      VISIBILITY_TIMEOUT = "300s"
      STORAGE            = "s3"
      QUEUE              = "sqs"
    }
    error_message = "The processor's heartbeat and visibility must come from the same variables as the queue."
  }

  assert {
    condition = [
      for e in jsondecode(aws_ecs_task_definition.processor.container_definitions)[0].environment : e.name
      if contains(["X265_CRF", "X265_PRESET"], e.name)
    ] == []
    error_message = "By default the QUALITY preset decides CRF and preset."
  }

  assert {
    condition     = jsondecode(aws_ecs_task_definition.processor.container_definitions)[0].stopTimeout == 120
    error_message = "The processor needs the full 120 s after SIGTERM."
  }

  assert {
    condition     = aws_cloudwatch_log_group.processor.retention_in_days == 30
    error_message = "Logs must expire (30 days by default)."
  }

  assert {
    condition = alltrue([
      for k in ["AWS_REGION", "S3_BUCKET", "WORK_QUEUE_URL", "RESULTS_QUEUE_URL", "ECS_CLUSTER", "ECS_TASK_DEFINITION", "ECS_SUBNETS", "ECS_SECURITY_GROUPS"] :
      strcontains(output.portainer_env, "${k}=")
    ])
    error_message = "portainer_env must carry everything the home stack needs."
  }

  assert {
    condition     = length(aws_ecs_service.dispatcher) == 1 && length(aws_iam_user.dispatcher) == 0
    error_message = "dispatcher_mode = ecs runs the dispatcher as an ECS service, with no IAM user."
  }

  assert {
    condition     = toset(aws_ecs_cluster_capacity_providers.this[0].capacity_providers) == toset(["FARGATE", "FARGATE_SPOT"])
    error_message = "The cluster must have FARGATE and FARGATE_SPOT."
  }

  assert {
    condition     = length(aws_sns_topic_subscription.email) == 0
    error_message = "No e-mail subscription without alarm_email."
  }

  assert {
    condition     = length(aws_cloudwatch_metric_alarm.dlq_depth) == 2
    error_message = "Both dead-letter queues need an alarm."
  }

  assert {
    condition = anytrue([
      for s in jsondecode(aws_s3_bucket_policy.this.policy).Statement :
      s.Effect == "Deny" && s.Principal == "*" && s.Action == "s3:*" && try(s.Condition.Bool["aws:SecureTransport"], "") == "false"
    ])
    error_message = "The bucket policy must deny every request without TLS."
  }

  assert {
    condition = alltrue([
      for s in jsondecode(aws_sqs_queue_policy.work.policy).Statement :
      s.Effect == "Deny" || try(s.Principal.Service == "s3.amazonaws.com" && s.Condition.ArnEquals["aws:SourceArn"] == "arn:aws:s3:::my-hevc-bucket", false)
    ])
    error_message = "Only this bucket may send to the work queue."
  }

  assert {
    condition = {
      for s in jsondecode(aws_iam_role_policy.processor.policy).Statement : s.Sid => s.Resource
      } == {
      TellMissingFromDenied   = "arn:aws:s3:::my-hevc-bucket"
      ReadAndRemoveWork       = "arn:aws:s3:::my-hevc-bucket/TODO/*"
      WriteResultsAndFailures = ["arn:aws:s3:::my-hevc-bucket/DONE/*", "arn:aws:s3:::my-hevc-bucket/FAILED/*"]
      WriteCostRecords        = "arn:aws:s3:::my-hevc-bucket/COSTS/*"
      HeartbeatAndAckWork     = "arn:aws:sqs:eu-central-1:123456789012:hevc-encoder-work"
    }
    error_message = "The processor may only read/delete TODO/*, write DONE/*, FAILED/* and COSTS/*, and touch the work queue."
  }

  # No Allow statement of a service identity uses Resource "*", except for
  # actions AWS cannot scope (ecr:GetAuthorizationToken) or scopes by
  # condition (ecs:ListTasks with ecs:cluster); no action is a wildcard.
  assert {
    condition = alltrue(flatten([
      for doc in [
        aws_iam_role_policy.processor.policy,
        aws_iam_role_policy.dispatcher[0].policy,
        aws_iam_user_policy.home[0].policy,
        aws_iam_user_policy.service["s3-uploader"].policy,
        aws_iam_user_policy.service["result-downloader"].policy,
        aws_iam_user_policy.service["trigger"].policy,
        aws_iam_role_policy.execution.policy,
        aws_iam_role_policy.dispatcher_execution[0].policy,
        ] : [
        for s in jsondecode(doc).Statement : [
          s.Effect == "Allow",
          !contains(flatten([s.Resource]), "*") || alltrue([
            for a in flatten([s.Action]) : contains(["ecs:ListTasks", "ecr:GetAuthorizationToken", "ecs:DescribeTaskDefinition"], a)
          ]),
          alltrue([for a in flatten([s.Action]) : !strcontains(a, "*")]),
        ]
      ]
    ]))
    error_message = "An IAM statement allows Resource \"*\" for an action that can be scoped, or uses a wildcard action."
  }

  assert {
    condition = {
      for s in jsondecode(aws_iam_role_policy.dispatcher[0].policy).Statement : s.Sid => s.Resource
      if contains(["RunProcessorTasks", "PassProcessorRoles"], s.Sid)
      } == {
      RunProcessorTasks  = "arn:aws:ecs:eu-central-1:123456789012:task-definition/hevc-encoder-hevc-processor:*"
      PassProcessorRoles = ["arn:aws:iam::123456789012:role/hevc-encoder-hevc-processor", "arn:aws:iam::123456789012:role/hevc-encoder-ecs-execution"]
    }
    error_message = "The dispatcher may run the processor's task definition and pass its roles, nothing else."
  }

  # The dispatcher's own roles are not among those it may pass: its task
  # runs with its own execution role, and RunTask passes only the
  # processor's task role and the processor's execution role.
  assert {
    condition = (
      aws_ecs_task_definition.dispatcher[0].execution_role_arn == "arn:aws:iam::123456789012:role/hevc-encoder-sqs-dispatcher-execution" &&
      aws_ecs_task_definition.processor.execution_role_arn == "arn:aws:iam::123456789012:role/hevc-encoder-ecs-execution" &&
      aws_ecs_task_definition.processor.task_role_arn == "arn:aws:iam::123456789012:role/hevc-encoder-hevc-processor" &&
      length(setintersection(
        toset(flatten([for s in jsondecode(aws_iam_role_policy.dispatcher[0].policy).Statement : s.Resource if contains(flatten([s.Action]), "iam:PassRole")])),
        toset(["arn:aws:iam::123456789012:role/hevc-encoder-sqs-dispatcher-execution", "arn:aws:iam::123456789012:role/hevc-encoder-sqs-dispatcher"]),
      )) == 0
    )
    error_message = "The dispatcher must have its own execution role and may pass only the processor's roles."
  }

  # One identity per home service, each with only its own permissions.
  assert {
    condition = (
      toset(keys(aws_iam_user.service)) == toset(["s3-uploader", "result-downloader", "trigger"]) &&
      aws_iam_user.service["s3-uploader"].name == "hevc-encoder-s3-uploader" &&
      length(aws_iam_user.home) == 1
    )
    error_message = "Each home service needs its own IAM user (and the shared one is on by default)."
  }

  assert {
    condition = {
      for s in jsondecode(aws_iam_user_policy.service["s3-uploader"].policy).Statement : s.Sid => [flatten([s.Action]), flatten([s.Resource])]
      } == {
      ListBucket                 = [["s3:ListBucket"], ["arn:aws:s3:::my-hevc-bucket"]]
      UploadWork                 = [["s3:PutObject", "s3:AbortMultipartUpload", "s3:GetObject"], ["arn:aws:s3:::my-hevc-bucket/TODO/*"]]
      ReadFailuresAndHeadResults = [["s3:GetObject"], ["arn:aws:s3:::my-hevc-bucket/FAILED/*", "arn:aws:s3:::my-hevc-bucket/DONE/*"]]
    }
    error_message = "s3-uploader may put TODO/*, read FAILED/* and head DONE/*, nothing else (no queue, no delete)."
  }

  assert {
    condition = {
      for s in jsondecode(aws_iam_user_policy.service["result-downloader"].policy).Statement : s.Sid => [flatten([s.Action]), flatten([s.Resource])]
      } == {
      ListBucket      = [["s3:ListBucket"], ["arn:aws:s3:::my-hevc-bucket"]]
      DownloadResults = [["s3:GetObject", "s3:DeleteObject"], ["arn:aws:s3:::my-hevc-bucket/DONE/*"]]
      ConsumeResults  = [["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"], ["arn:aws:sqs:eu-central-1:123456789012:hevc-encoder-results"]]
    }
    error_message = "result-downloader may get/delete DONE/* and consume the results queue, nothing else."
  }

  assert {
    condition = alltrue([
      for s in jsondecode(aws_iam_user_policy.service["trigger"].policy).Statement : alltrue([
        for a in flatten([s.Action]) : !contains(["s3:PutObject", "s3:DeleteObject", "ecs:RunTask", "iam:PassRole"], a) && !(a == "s3:GetObject" && !contains([["arn:aws:s3:::my-hevc-bucket/FAILED/*"], ["arn:aws:s3:::my-hevc-bucket/COSTS/*"]], flatten([s.Resource])))
      ])
      ]) && contains(flatten([
        for s in jsondecode(aws_iam_user_policy.service["trigger"].policy).Statement : flatten([s.Action]) if flatten([s.Resource]) == ["arn:aws:sqs:eu-central-1:123456789012:hevc-encoder-work"]
    ]), "sqs:SendMessage")
    error_message = "trigger may send to the work queue and read FAILED/* and COSTS/* (status), but write or delete no object and start no task."
  }

  assert {
    condition     = output.subnet_ids == tolist(["subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb"])
    error_message = "Without subnet_ids, every subnet of the default VPC is used."
  }
}

run "home_dispatcher_sse_s3_existing_cluster" {
  command = apply

  variables {
    dispatcher_mode    = "home"
    dispatcher_image   = null
    s3_encryption      = "SSE-S3"
    create_ecs_cluster = false
    ecs_cluster_name   = "existing"
    alarm_email        = "ops@example.com"
    subnet_ids         = ["subnet-0ccccccccccccccccc"]
  }

  assert {
    condition     = one(one(aws_s3_bucket_server_side_encryption_configuration.this.rule).apply_server_side_encryption_by_default).sse_algorithm == "AES256"
    error_message = "s3_encryption = SSE-S3 must use AES256."
  }

  assert {
    condition     = length(aws_ecs_service.dispatcher) == 0 && length(aws_iam_user.dispatcher) == 1
    error_message = "dispatcher_mode = home: no ECS service, an IAM user for the dispatcher."
  }

  assert {
    condition     = length(aws_ecs_cluster.this) == 0 && output.ecs_cluster_arn == "arn:aws:ecs:eu-central-1:123456789012:cluster/existing"
    error_message = "An existing cluster is referenced, not created."
  }

  assert {
    condition     = strcontains(output.portainer_env, "LAUNCHER=ecs") && strcontains(output.portainer_env, "ECS_SUBNETS=subnet-0ccccccccccccccccc")
    error_message = "portainer_env must carry the dispatcher's settings when it runs at home."
  }

  assert {
    condition     = length(aws_sns_topic_subscription.email) == 1
    error_message = "alarm_email subscribes an e-mail address."
  }
}

run "encode_overrides_reach_the_task" {
  command = apply

  variables {
    x265_crf    = 24
    x265_preset = "medium"
  }

  assert {
    condition = {
      for e in jsondecode(aws_ecs_task_definition.processor.container_definitions)[0].environment : e.name => e.value
      if startswith(e.name, "X265_C") || startswith(e.name, "X265_P") || e.name == "QUALITY"
      } == {
      QUALITY     = "balanced"
      X265_CRF    = "24"
      X265_PRESET = "medium"
    }
    error_message = "x265_crf and x265_preset must reach the processor's environment."
  }
}

run "rejects_bad_crf" {
  command = plan

  variables {
    x265_crf = 60
  }

  expect_failures = [var.x265_crf]
}

run "rejects_visibility_shorter_than_two_heartbeats" {
  command = plan

  variables {
    processor_heartbeat_interval_seconds = 200
    work_visibility_timeout_seconds      = 300
  }

  expect_failures = [terraform_data.checks, aws_sqs_queue.work]
}

run "requires_dispatcher_image_on_ecs" {
  command = plan

  variables {
    dispatcher_image = null
  }

  expect_failures = [terraform_data.checks]
}

run "rejects_bad_bucket_name" {
  command = plan

  variables {
    bucket_name = "Bad.Bucket"
  }

  expect_failures = [var.bucket_name]
}

run "budget_and_prices_reach_the_dispatcher" {
  command = apply

  variables {
    monthly_budget_usd     = 25
    fargate_spot_vcpu_hour = 0.0101
  }

  assert {
    condition = {
      for k, v in output.dispatcher_env : k => v
      if k == "BUDGET_USD" || startswith(k, "FARGATE_SPOT_") || k == "S3_TRANSFER_OUT_GB"
      } == {
      BUDGET_USD             = "25"
      FARGATE_SPOT_VCPU_HOUR = "0.0101"
    }
    error_message = "monthly_budget_usd and the prices that are set must reach the dispatcher's environment."
  }
}
