# ---------------------------------------------------------------------------
# General
# ---------------------------------------------------------------------------

variable "aws_region" {
  description = "AWS region for every resource (e.g. eu-central-1). Fargate ARM64 and FARGATE_SPOT must be available there."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "aws_region must look like eu-central-1."
  }
}

variable "name" {
  description = "Prefix for the names of every resource (queues, roles, cluster, log group). Lowercase letters, digits and dashes."
  type        = string
  default     = "hevc-encoder"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 characters: lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "tags" {
  description = "Extra tags added to every resource (merged into the provider's default_tags)."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------
# S3
# ---------------------------------------------------------------------------

variable "bucket_name" {
  description = "Name of the S3 bucket that holds TODO/, DONE/ and FAILED/ (globally unique; no dots, so TLS virtual-host addressing works)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", var.bucket_name)) && !can(regex("^xn--|-s3alias$|--ol-s3$", var.bucket_name))
    error_message = "bucket_name must be 3-63 characters of lowercase letters, digits and dashes (no dots), and not use a reserved prefix or suffix."
  }
}

variable "bucket_force_destroy" {
  description = "Allow `terraform destroy` to delete the bucket while it still holds objects. Keep false unless you really mean to throw work away."
  type        = bool
  default     = false
}

variable "s3_encryption" {
  description = "Default encryption of the bucket: SSE-KMS (with an S3 bucket key, which keeps KMS request costs negligible) or SSE-S3 (AES256)."
  type        = string
  default     = "SSE-KMS"

  validation {
    condition     = contains(["SSE-KMS", "SSE-S3"], var.s3_encryption)
    error_message = "s3_encryption must be SSE-KMS or SSE-S3."
  }
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key ARN for SSE-KMS. null uses the AWS-managed key aws/s3 (no key policy to maintain). With a key set, the service roles get kms:Decrypt/GenerateDataKey on it only."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID) or null."
  }
}

variable "abort_incomplete_multipart_days" {
  description = "Days after which incomplete multipart uploads are aborted (their parts cost money and are invisible)."
  type        = number
  default     = 1

  validation {
    condition     = var.abort_incomplete_multipart_days >= 1 && floor(var.abort_incomplete_multipart_days) == var.abort_incomplete_multipart_days
    error_message = "abort_incomplete_multipart_days must be a whole number >= 1."
  }
}

variable "todo_expiration_days" {
  description = "Days after which objects under TODO/ expire. The original stays in the library, so an expired job only needs another upload."
  type        = number
  default     = 7

  validation {
    condition     = var.todo_expiration_days >= 1 && floor(var.todo_expiration_days) == var.todo_expiration_days
    error_message = "todo_expiration_days must be a whole number >= 1."
  }
}

variable "done_expiration_days" {
  description = "Days after which results under DONE/ expire if result-downloader never fetched them. Make it longer than your home server may be offline."
  type        = number
  default     = 14

  validation {
    condition     = var.done_expiration_days >= 1 && floor(var.done_expiration_days) == var.done_expiration_days
    error_message = "done_expiration_days must be a whole number >= 1."
  }
}

variable "failed_expiration_days" {
  description = "Days after which failure records under FAILED/ expire."
  type        = number
  default     = 30

  validation {
    condition     = var.failed_expiration_days >= 1 && floor(var.failed_expiration_days) == var.failed_expiration_days
    error_message = "failed_expiration_days must be a whole number >= 1."
  }
}

variable "cost_records_expiration_days" {
  description = "Days after which the processors' cost records under COSTS/ expire (the estimate sums the current calendar month)."
  type        = number
  default     = 400

  validation {
    condition     = var.cost_records_expiration_days >= 32 && floor(var.cost_records_expiration_days) == var.cost_records_expiration_days
    error_message = "cost_records_expiration_days must be a whole number >= 32 (a month's records must outlive the month)."
  }
}

variable "monthly_budget_usd" {
  description = "Estimated AWS spend per calendar month (UTC) at which sqs-dispatcher stops launching processors until the next month (BUDGET_USD); 0: no budget. The estimate sums the processors' cost records at the prices below."
  type        = number
  default     = 0

  validation {
    condition     = var.monthly_budget_usd >= 0
    error_message = "monthly_budget_usd must be 0 (no budget) or more."
  }
}

variable "fargate_spot_vcpu_hour" {
  description = "USD per vCPU-hour of Fargate Spot in your region and architecture, for the cost estimate (FARGATE_SPOT_VCPU_HOUR); null keeps the dispatcher's dated default."
  type        = number
  default     = null
}

variable "fargate_spot_gb_hour" {
  description = "USD per GB-hour of Fargate Spot memory, for the cost estimate (FARGATE_SPOT_GB_HOUR); null keeps the dispatcher's dated default."
  type        = number
  default     = null
}

variable "s3_transfer_out_gb" {
  description = "USD per GB of S3 transfer out to the internet (results downloaded home), for the cost estimate (S3_TRANSFER_OUT_GB); null keeps the dispatcher's dated default."
  type        = number
  default     = null
}

variable "work_suffixes" {
  description = "Key suffixes under TODO/ that notify the work queue. S3 suffix filters are case-sensitive while the library accepts any case of .mp4 (cameras write .MP4), so both common spellings are listed."
  type        = list(string)
  default     = [".mp4", ".MP4"]

  validation {
    condition     = length(var.work_suffixes) > 0 && alltrue([for s in var.work_suffixes : lower(s) == ".mp4"])
    error_message = "work_suffixes must be a non-empty list of spellings of .mp4."
  }
}

# ---------------------------------------------------------------------------
# SQS
# ---------------------------------------------------------------------------

variable "max_receive_count" {
  description = "Deliveries of a message before SQS moves it to the dead-letter queue (redrive maxReceiveCount) on both queues."
  type        = number
  default     = 5

  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000
    error_message = "max_receive_count must be between 1 and 1000."
  }
}

variable "processor_heartbeat_interval_seconds" {
  description = "How often hevc-processor extends its message's visibility while it works (HEARTBEAT_INTERVAL). Must be at most half the work queue's visibility timeout."
  type        = number
  default     = 60

  validation {
    condition     = var.processor_heartbeat_interval_seconds >= 5 && var.processor_heartbeat_interval_seconds <= 21600
    error_message = "processor_heartbeat_interval_seconds must be between 5 and 21600."
  }
}

variable "work_visibility_timeout_seconds" {
  description = "Visibility timeout of the work queue, also passed to the processor as VISIBILITY_TIMEOUT (each heartbeat hides the message for this long). At least twice the heartbeat interval, so one late heartbeat does not release a running job."
  type        = number
  default     = 300

  validation {
    condition     = var.work_visibility_timeout_seconds >= 30 && var.work_visibility_timeout_seconds <= 43200
    error_message = "work_visibility_timeout_seconds must be between 30 and 43200 (12 h, the SQS maximum)."
  }
}

variable "results_visibility_timeout_seconds" {
  description = "Visibility timeout of the results queue: how long result-downloader may take to fetch, verify and install one result before the message is delivered again."
  type        = number
  default     = 900

  validation {
    condition     = var.results_visibility_timeout_seconds >= 30 && var.results_visibility_timeout_seconds <= 43200
    error_message = "results_visibility_timeout_seconds must be between 30 and 43200."
  }
}

variable "message_retention_seconds" {
  description = "How long messages are kept on the queues and dead-letter queues (default and maximum: 14 days)."
  type        = number
  default     = 1209600

  validation {
    condition     = var.message_retention_seconds >= 60 && var.message_retention_seconds <= 1209600
    error_message = "message_retention_seconds must be between 60 and 1209600."
  }
}

# ---------------------------------------------------------------------------
# Alarms
# ---------------------------------------------------------------------------

variable "alarm_email" {
  description = "E-mail address subscribed to the alarm topic (SNS sends a confirmation mail first). null: no subscription, subscribe yourself to the sns_topic_arn output."
  type        = string
  default     = null

  validation {
    condition     = var.alarm_email == null || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email must be an e-mail address or null."
  }
}

variable "work_age_alarm_seconds" {
  description = "Alarm when the oldest message on the work queue is older than this (jobs are stuck: no dispatcher, no capacity, or failing tasks)."
  type        = number
  default     = 21600

  validation {
    condition     = var.work_age_alarm_seconds >= 300
    error_message = "work_age_alarm_seconds must be at least 300."
  }
}

# ---------------------------------------------------------------------------
# ECS
# ---------------------------------------------------------------------------

variable "create_ecs_cluster" {
  description = "Create an ECS cluster with the FARGATE and FARGATE_SPOT capacity providers. false: use the existing cluster named by ecs_cluster_name (it must have both capacity providers attached)."
  type        = bool
  default     = true
}

variable "ecs_cluster_name" {
  description = "Name of the ECS cluster: of the new one (null: the name variable), or of the existing one when create_ecs_cluster = false (required then)."
  type        = string
  default     = null

  validation {
    condition     = var.ecs_cluster_name == null || can(regex("^[A-Za-z0-9_-]{1,255}$", var.ecs_cluster_name))
    error_message = "ecs_cluster_name may contain letters, digits, dashes and underscores only."
  }
}

variable "container_insights" {
  description = "Enable CloudWatch Container Insights on a cluster created here (extra cost)."
  type        = bool
  default     = false
}

variable "use_fargate_spot" {
  description = "Run processor tasks on FARGATE_SPOT (about 70% cheaper; the dispatcher falls back to FARGATE when Spot has no capacity). false: always FARGATE."
  type        = bool
  default     = true
}

variable "processor_image" {
  description = "Container image of hevc-processor, e.g. 123456789012.dkr.ecr.eu-central-1.amazonaws.com/hevc-encoder/hevc-processor:1.0.0. Pin a tag or a digest; it must have the processor_cpu_architecture variant."
  type        = string

  validation {
    condition     = length(trimspace(var.processor_image)) > 0 && !can(regex("\\s", var.processor_image))
    error_message = "processor_image must be a non-empty image reference."
  }
}

variable "processor_cpu_architecture" {
  description = "CPU architecture of processor tasks: ARM64 (Graviton, cheaper per encode) or X86_64."
  type        = string
  default     = "ARM64"

  validation {
    condition     = contains(["ARM64", "X86_64"], var.processor_cpu_architecture)
    error_message = "processor_cpu_architecture must be ARM64 or X86_64."
  }
}

variable "processor_cpu" {
  description = "CPU units of one processor task (1024 = 1 vCPU). x265 scales well up to about 8 vCPUs for phone video."
  type        = number
  default     = 4096

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.processor_cpu)
    error_message = "processor_cpu must be one of the Fargate sizes 256, 512, 1024, 2048, 4096, 8192, 16384."
  }
}

variable "processor_memory" {
  description = "Memory (MiB) of one processor task; must be a valid Fargate combination with processor_cpu (e.g. 4096 CPU: 8192-30720)."
  type        = number
  default     = 8192

  validation {
    condition     = var.processor_memory >= 512 && var.processor_memory <= 122880 && var.processor_memory % 512 == 0
    error_message = "processor_memory must be a multiple of 512 between 512 and 122880."
  }
}

variable "processor_ephemeral_storage_gib" {
  description = "Ephemeral storage (GiB) of one processor task: it holds the input and the output of one file at a time."
  type        = number
  default     = 50

  validation {
    condition     = var.processor_ephemeral_storage_gib >= 21 && var.processor_ephemeral_storage_gib <= 200
    error_message = "processor_ephemeral_storage_gib must be between 21 and 200."
  }
}

variable "quality" {
  description = "hevc-processor's encode preset (QUALITY): archive, balanced (the seed's libx265 CRF 26, preset fast) or small. x265_crf and x265_preset override its parts."
  type        = string
  default     = "balanced"

  validation {
    condition     = contains(["archive", "balanced", "small"], var.quality)
    error_message = "quality must be archive, balanced or small."
  }
}

variable "x265_crf" {
  description = "x265 constant rate factor (X265_CRF), overriding the quality preset's: lower is better quality and bigger files. null keeps the preset's."
  type        = number
  default     = null

  validation {
    condition     = coalesce(var.x265_crf, 26) >= 0 && coalesce(var.x265_crf, 26) <= 51
    error_message = "x265_crf must be between 0 and 51, or null."
  }
}

variable "x265_preset" {
  description = "x265 preset (X265_PRESET), overriding the quality preset's: slower presets give smaller files for the same quality. null keeps the preset's."
  type        = string
  default     = null

  validation {
    condition     = var.x265_preset == null || contains(["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo"], coalesce(var.x265_preset, "fast"))
    error_message = "x265_preset must be an x265 preset name (ultrafast ... placebo), or null."
  }
}

variable "x265_threads" {
  description = "x265 worker threads (X265_THREADS); 0 lets x265 use every vCPU of the task."
  type        = number
  default     = 0

  validation {
    condition     = var.x265_threads >= 0 && var.x265_threads <= 64
    error_message = "x265_threads must be between 0 and 64."
  }
}

variable "log_level" {
  description = "LOG_LEVEL of the services running on ECS."
  type        = string
  default     = "info"

  validation {
    condition     = contains(["debug", "info", "warn", "error"], var.log_level)
    error_message = "log_level must be debug, info, warn or error."
  }
}

variable "log_retention_days" {
  description = "Retention of the CloudWatch log groups of the ECS tasks."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ...)."
  }
}

variable "max_tasks" {
  description = "Most processor tasks running at once (MAX_TASKS of the dispatcher). Mind the account's Fargate vCPU quota: max_tasks x processor_cpu / 1024 vCPUs."
  type        = number
  default     = 4

  validation {
    condition     = var.max_tasks >= 1 && var.max_tasks <= 500
    error_message = "max_tasks must be between 1 and 500."
  }
}

variable "ecr_repository_arns" {
  description = "ECR repositories the task execution role may pull from (the processor's and the dispatcher's). Empty when the images live in another registry."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.ecr_repository_arns : can(regex("^arn:aws[a-z-]*:ecr:[a-z0-9-]+:[0-9]{12}:repository/.+$", a))])
    error_message = "ecr_repository_arns must be ECR repository ARNs."
  }
}

variable "repository_credentials_secret_arn" {
  description = "Secrets Manager secret with {\"username\",\"password\"} for a private registry outside ECR. null: images are public or in ECR."
  type        = string
  default     = null

  validation {
    condition     = var.repository_credentials_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:", var.repository_credentials_secret_arn))
    error_message = "repository_credentials_secret_arn must be a Secrets Manager ARN or null."
  }
}

# ---------------------------------------------------------------------------
# Dispatcher
# ---------------------------------------------------------------------------

variable "dispatcher_mode" {
  description = "Where sqs-dispatcher runs: ecs (a one-task ECS service in the cluster, always on) or home (a Portainer stack on the home server; an IAM user holds its permissions)."
  type        = string
  default     = "ecs"

  validation {
    condition     = contains(["ecs", "home"], var.dispatcher_mode)
    error_message = "dispatcher_mode must be ecs or home."
  }
}

variable "dispatcher_image" {
  description = "Container image of sqs-dispatcher; required when dispatcher_mode = ecs."
  type        = string
  default     = null

  validation {
    condition     = var.dispatcher_image == null || can(regex("^[^\\s]+$", var.dispatcher_image))
    error_message = "dispatcher_image must be an image reference without spaces, or null."
  }
}

variable "dispatcher_cpu_architecture" {
  description = "CPU architecture of the dispatcher task (ARM64 or X86_64)."
  type        = string
  default     = "ARM64"

  validation {
    condition     = contains(["ARM64", "X86_64"], var.dispatcher_cpu_architecture)
    error_message = "dispatcher_cpu_architecture must be ARM64 or X86_64."
  }
}

variable "dispatcher_use_spot" {
  description = "Run the dispatcher service on FARGATE_SPOT. Interruptions are harmless (messages are at-least-once) but delay dispatching while ECS replaces the task."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------

variable "vpc_id" {
  description = "VPC for the tasks. null: the region's default VPC."
  type        = string
  default     = null

  validation {
    condition     = var.vpc_id == null || can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123abcd, or be null."
  }
}

variable "subnet_ids" {
  description = "Subnets for the tasks. Empty: every subnet of the VPC. Subnets need a route to S3/SQS/ECR: a public IP (assign_public_ip) or a NAT gateway / VPC endpoints."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "subnet_ids must look like subnet-0123abcd."
  }
}

variable "assign_public_ip" {
  description = "Give tasks a public IP (needed in public subnets without NAT, such as the default VPC's). The security group allows no inbound traffic either way."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------
# Home server
# ---------------------------------------------------------------------------

variable "create_home_user" {
  description = "Create one IAM user per home-server service (s3-uploader, result-downloader, trigger for trigger and status), and one for sqs-dispatcher when dispatcher_mode = home. Access keys are not created here (they would sit in the state): create them with the AWS CLI, see README.md."
  type        = bool
  default     = true
}

variable "create_shared_home_user" {
  description = "Also create one IAM user with the permissions of all home services together (home_policy): what the `process` command (upload and download in one run) and a Portainer stack whose containers share one credentials file need. Set false once every service has its own key."
  type        = bool
  default     = true
}
