resource "aws_ecs_cluster" "this" {
  count = var.create_ecs_cluster ? 1 : 0

  name = local.cluster_name

  setting {
    name  = "containerInsights"
    value = var.container_insights ? "enabled" : "disabled"
  }
}

# Only for a cluster created here: this resource owns the cluster's capacity
# provider list. An existing cluster must have FARGATE and FARGATE_SPOT
# attached already.
resource "aws_ecs_cluster_capacity_providers" "this" {
  count = var.create_ecs_cluster ? 1 : 0

  cluster_name       = aws_ecs_cluster.this[0].name
  capacity_providers = ["FARGATE", "FARGATE_SPOT"]

  default_capacity_provider_strategy {
    capacity_provider = var.use_fargate_spot ? "FARGATE_SPOT" : "FARGATE"
    weight            = 1
  }
}

resource "aws_cloudwatch_log_group" "processor" {
  name              = "/ecs/${var.name}/hevc-processor"
  retention_in_days = var.log_retention_days
}

resource "aws_cloudwatch_log_group" "dispatcher" {
  count = local.dispatcher_on_ecs ? 1 : 0

  name              = "/ecs/${var.name}/sqs-dispatcher"
  retention_in_days = var.log_retention_days
}

locals {
  # The processor's static configuration. The dispatcher adds the job
  # (S3_OBJECT_KEY, SQS_RECEIPT_HANDLE, WORK_QUEUE_URL, S3_BUCKET) as
  # container overrides at RunTask. Every name here must be a variable the
  # processor reads (checked by deployments/deploytest).
  processor_environment = merge({
    STORAGE            = "s3"
    QUEUE              = "sqs"
    AWS_REGION         = var.aws_region
    S3_BUCKET          = aws_s3_bucket.this.id
    WORK_QUEUE_URL     = aws_sqs_queue.work.url
    QUALITY            = var.quality
    X265_THREADS       = tostring(var.x265_threads)
    HEARTBEAT_INTERVAL = "${var.processor_heartbeat_interval_seconds}s"
    VISIBILITY_TIMEOUT = "${var.work_visibility_timeout_seconds}s"
    LOG_LEVEL          = var.log_level
    LOG_FORMAT         = "json"
    # The task's size, for its cost record (vCPU- and GB-seconds).
    TASK_VCPU       = tostring(var.processor_cpu / 1024)
    TASK_MEMORY_GIB = tostring(var.processor_memory / 1024)
    }, {
    for k, v in {
      X265_CRF    = var.x265_crf == null ? null : tostring(var.x265_crf)
      X265_PRESET = var.x265_preset
    } : k => v if v != null
  })

  # Configuration of sqs-dispatcher, on ECS (below) or at home (the
  # dispatcher_env output).
  dispatcher_environment = merge({
    STORAGE               = "s3"
    QUEUE                 = "sqs"
    LAUNCHER              = "ecs"
    AWS_REGION            = var.aws_region
    S3_BUCKET             = aws_s3_bucket.this.id
    WORK_QUEUE_URL        = aws_sqs_queue.work.url
    ECS_CLUSTER           = local.cluster_name
    ECS_TASK_DEFINITION   = local.processor_family
    ECS_CONTAINER_NAME    = local.processor_container_name
    ECS_SUBNETS           = join(",", local.subnet_ids)
    ECS_SECURITY_GROUPS   = aws_security_group.tasks.id
    ECS_ASSIGN_PUBLIC_IP  = tostring(var.assign_public_ip)
    ECS_CAPACITY_PROVIDER = var.use_fargate_spot ? "FARGATE_SPOT" : "FARGATE"
    MAX_TASKS             = tostring(var.max_tasks)
    LOG_LEVEL             = var.log_level
    LOG_FORMAT            = "json"
    BUDGET_USD            = tostring(var.monthly_budget_usd)
    }, {
    # Prices for the cost estimate; unset ones keep the dispatcher's
    # defaults (their date is in its --help).
    for k, v in {
      FARGATE_SPOT_VCPU_HOUR = var.fargate_spot_vcpu_hour == null ? null : tostring(var.fargate_spot_vcpu_hour)
      FARGATE_SPOT_GB_HOUR   = var.fargate_spot_gb_hour == null ? null : tostring(var.fargate_spot_gb_hour)
      S3_TRANSFER_OUT_GB     = var.s3_transfer_out_gb == null ? null : tostring(var.s3_transfer_out_gb)
    } : k => v if v != null
  })

  repository_credentials = var.repository_credentials_secret_arn == null ? {} : {
    repositoryCredentials = { credentialsParameter = var.repository_credentials_secret_arn }
  }
}

resource "aws_ecs_task_definition" "processor" {
  family                   = local.processor_family
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.processor_cpu
  memory                   = var.processor_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.processor.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.processor_cpu_architecture
  }

  ephemeral_storage {
    size_in_gib = var.processor_ephemeral_storage_gib
  }

  container_definitions = jsonencode([merge({
    name      = local.processor_container_name
    image     = var.processor_image
    essential = true
    environment = [
      for k in sort(keys(local.processor_environment)) : { name = k, value = local.processor_environment[k] }
    ]
    # Fargate Spot sends SIGTERM two minutes before it reclaims the task: the
    # processor makes its message visible again and exits. 120 s is the
    # Fargate maximum.
    stopTimeout = 120
    linuxParameters = {
      initProcessEnabled = true
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.processor.name
        awslogs-region        = var.aws_region
        awslogs-stream-prefix = "processor"
      }
    }
  }, local.repository_credentials)])
}

resource "aws_ecs_task_definition" "dispatcher" {
  count = local.dispatcher_on_ecs ? 1 : 0

  family                   = local.dispatcher_family
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = 256
  memory                   = 512
  execution_role_arn       = aws_iam_role.dispatcher_execution[0].arn
  task_role_arn            = aws_iam_role.dispatcher[0].arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.dispatcher_cpu_architecture
  }

  container_definitions = jsonencode([merge({
    name      = "sqs-dispatcher"
    image     = var.dispatcher_image
    essential = true
    environment = [
      for k in sort(keys(local.dispatcher_environment)) : { name = k, value = local.dispatcher_environment[k] }
    ]
    stopTimeout = 30
    linuxParameters = {
      initProcessEnabled = true
    }
    # ECS ignores the image's HEALTHCHECK: the same check here, so that the
    # service replaces a dispatcher whose /healthz fails (start-up checks,
    # AWS refusing its calls, a stuck loop). The image sets METRICS_ADDR.
    healthCheck = {
      command     = ["CMD", "/usr/local/bin/sqs-dispatcher", "healthcheck"]
      interval    = 30
      timeout     = 10
      retries     = 3
      startPeriod = 60
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.dispatcher[0].name
        awslogs-region        = var.aws_region
        awslogs-stream-prefix = "dispatcher"
      }
    }
  }, local.repository_credentials)])
}

resource "aws_ecs_service" "dispatcher" {
  count = local.dispatcher_on_ecs ? 1 : 0

  name            = "${var.name}-sqs-dispatcher"
  cluster         = local.cluster_arn
  task_definition = aws_ecs_task_definition.dispatcher[0].arn
  desired_count   = 1

  # One dispatcher at a time: stop the old task before starting the new one.
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100

  capacity_provider_strategy {
    capacity_provider = var.dispatcher_use_spot ? "FARGATE_SPOT" : "FARGATE"
    weight            = 1
  }

  network_configuration {
    subnets          = local.subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = var.assign_public_ip
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  depends_on = [aws_ecs_cluster_capacity_providers.this]
}
