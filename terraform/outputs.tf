output "aws_region" {
  description = "Region of every resource (AWS_REGION)."
  value       = var.aws_region
}

output "bucket_name" {
  description = "S3 bucket (S3_BUCKET)."
  value       = aws_s3_bucket.this.id
}

output "bucket_arn" {
  description = "ARN of the S3 bucket."
  value       = aws_s3_bucket.this.arn
}

output "work_queue_url" {
  description = "Work queue URL (WORK_QUEUE_URL)."
  value       = aws_sqs_queue.work.url
}

output "work_dlq_url" {
  description = "Dead-letter queue of the work queue."
  value       = aws_sqs_queue.work_dlq.url
}

output "results_queue_url" {
  description = "Results queue URL (RESULTS_QUEUE_URL)."
  value       = aws_sqs_queue.results.url
}

output "results_dlq_url" {
  description = "Dead-letter queue of the results queue."
  value       = aws_sqs_queue.results_dlq.url
}

output "ecs_cluster_name" {
  description = "ECS cluster (ECS_CLUSTER)."
  value       = local.cluster_name
}

output "ecs_cluster_arn" {
  description = "ARN of the ECS cluster."
  value       = local.cluster_arn
}

output "processor_task_definition" {
  description = "Family of the hevc-processor task definition (ECS_TASK_DEFINITION; RunTask uses its latest revision)."
  value       = aws_ecs_task_definition.processor.family
}

output "processor_task_definition_arn" {
  description = "ARN of the current revision of the hevc-processor task definition."
  value       = aws_ecs_task_definition.processor.arn
}

output "processor_container_name" {
  description = "Container name inside the processor task definition (ECS_CONTAINER_NAME)."
  value       = local.processor_container_name
}

output "subnet_ids" {
  description = "Subnets for processor tasks (ECS_SUBNETS, comma-separated)."
  value       = local.subnet_ids
}

output "security_group_id" {
  description = "Security group for processor tasks (ECS_SECURITY_GROUPS)."
  value       = aws_security_group.tasks.id
}

output "processor_log_group" {
  description = "CloudWatch log group of the processor tasks."
  value       = aws_cloudwatch_log_group.processor.name
}

output "sns_topic_arn" {
  description = "SNS topic that receives the alarms."
  value       = aws_sns_topic.alarms.arn
}

output "home_user_name" {
  description = "IAM user with the permissions of all home-server services together (create_shared_home_user); create its access key with `aws iam create-access-key --user-name <this>`. null when not created."
  value       = var.create_shared_home_user ? aws_iam_user.home[0].name : null
}

output "service_user_names" {
  description = "IAM user of each home-server service (s3-uploader, result-downloader, trigger), one access key each; empty when create_home_user = false."
  value       = { for k, u in aws_iam_user.service : k => u.name }
}

output "home_policy_arn" {
  description = "Managed policy with all home-server services' permissions (to attach to a user or role of your own)."
  value       = aws_iam_policy.home.arn
}

output "service_policy_arns" {
  description = "Managed policy of each home-server service (s3-uploader, result-downloader, trigger), to attach to users or roles of your own."
  value = {
    "s3-uploader"       = aws_iam_policy.uploader.arn
    "result-downloader" = aws_iam_policy.downloader.arn
    "trigger"           = aws_iam_policy.trigger.arn
  }
}

output "dispatcher_user_name" {
  description = "IAM user for sqs-dispatcher when dispatcher_mode = home (null otherwise)."
  value       = length(aws_iam_user.dispatcher) > 0 ? aws_iam_user.dispatcher[0].name : null
}

output "dispatcher_env" {
  description = "sqs-dispatcher's configuration (what the ECS service gets; for dispatcher_mode = home, put it in the dispatcher stack's environment)."
  value       = local.dispatcher_environment
}

output "portainer_env" {
  description = "Variables for the Portainer stacks (deployments/portainer): `terraform output -raw portainer_env`. The ECS settings serve the home dispatcher and the trigger/status jobs."
  value = join("\n", concat(
    ["RESULTS_QUEUE_URL=${aws_sqs_queue.results.url}"],
    [
      for k in sort(keys(local.dispatcher_environment)) : "${k}=${local.dispatcher_environment[k]}"
      if !contains(["STORAGE", "QUEUE", "LOG_LEVEL", "LOG_FORMAT"], k)
    ],
  ))
}
