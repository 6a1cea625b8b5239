# Roles and users; their policies are in policies.tf.

# --- task execution roles ---------------------------------------------------

# The processor tasks' execution role (the dispatcher passes it at RunTask).
resource "aws_iam_role" "execution" {
  name               = "${var.name}-ecs-execution"
  assume_role_policy = local.ecs_tasks_assume_policy
}

resource "aws_iam_role_policy" "execution" {
  name   = "task-execution"
  role   = aws_iam_role.execution.id
  policy = local.execution_policy
}

# The dispatcher service's own execution role: not one the dispatcher may
# pass.
resource "aws_iam_role" "dispatcher_execution" {
  count = local.dispatcher_on_ecs ? 1 : 0

  name               = "${var.name}-sqs-dispatcher-execution"
  assume_role_policy = local.ecs_tasks_assume_policy
}

resource "aws_iam_role_policy" "dispatcher_execution" {
  count = local.dispatcher_on_ecs ? 1 : 0

  name   = "task-execution"
  role   = aws_iam_role.dispatcher_execution[0].id
  policy = local.dispatcher_execution_policy
}

# --- hevc-processor --------------------------------------------------------

resource "aws_iam_role" "processor" {
  name               = "${var.name}-hevc-processor"
  assume_role_policy = local.ecs_tasks_assume_policy
}

resource "aws_iam_role_policy" "processor" {
  name   = "hevc-processor"
  role   = aws_iam_role.processor.id
  policy = local.processor_policy
}

# --- sqs-dispatcher --------------------------------------------------------

resource "aws_iam_role" "dispatcher" {
  count = local.dispatcher_on_ecs ? 1 : 0

  name               = "${var.name}-sqs-dispatcher"
  assume_role_policy = local.ecs_tasks_assume_policy
}

resource "aws_iam_role_policy" "dispatcher" {
  count = local.dispatcher_on_ecs ? 1 : 0

  name   = "sqs-dispatcher"
  role   = aws_iam_role.dispatcher[0].id
  policy = local.dispatcher_policy
}

# Dispatcher at home: its own IAM user, so the other home services do not
# get RunTask and PassRole.
resource "aws_iam_user" "dispatcher" {
  count = !local.dispatcher_on_ecs && var.create_home_user ? 1 : 0

  name = "${var.name}-sqs-dispatcher"
}

resource "aws_iam_user_policy" "dispatcher" {
  count = !local.dispatcher_on_ecs && var.create_home_user ? 1 : 0

  name   = "sqs-dispatcher"
  user   = aws_iam_user.dispatcher[0].name
  policy = local.dispatcher_policy
}

# --- home server: one IAM user per service ---------------------------------
# s3-uploader, result-downloader, and trigger (which status also uses) each
# get their own user and key, so that a leaked key of one service cannot do
# what the others may (the uploader cannot delete results, the downloader
# cannot queue work, trigger can touch no object).

locals {
  home_identities = {
    "s3-uploader"       = local.uploader_policy
    "result-downloader" = local.downloader_policy
    "trigger"           = local.trigger_policy
  }
}

resource "aws_iam_user" "service" {
  for_each = var.create_home_user ? local.home_identities : {}

  name = "${var.name}-${each.key}"
}

resource "aws_iam_user_policy" "service" {
  for_each = var.create_home_user ? local.home_identities : {}

  name   = each.key
  user   = aws_iam_user.service[each.key].name
  policy = each.value
}

# The same policies as managed policies, to attach to users or roles of your
# own instead.
resource "aws_iam_policy" "uploader" {
  name        = "${var.name}-s3-uploader"
  description = "hevc-encoder s3-uploader: upload TODO/, read FAILED/ records, head DONE/."
  policy      = local.uploader_policy
}

resource "aws_iam_policy" "downloader" {
  name        = "${var.name}-result-downloader"
  description = "hevc-encoder result-downloader: download and delete DONE/, consume the results queue."
  policy      = local.downloader_policy
}

resource "aws_iam_policy" "trigger" {
  name        = "${var.name}-trigger"
  description = "hevc-encoder trigger and status: list the bucket, re-queue work, redrive the work DLQ, read queue depths and running tasks."
  policy      = local.trigger_policy
}

# One user for all home services at once (the `process` command uploads and
# downloads in one run; a Portainer stack whose containers share one
# credentials file). Off by default: prefer the per-service users.
resource "aws_iam_user" "home" {
  count = var.create_shared_home_user ? 1 : 0

  name = "${var.name}-home"
}

resource "aws_iam_user_policy" "home" {
  count = var.create_shared_home_user ? 1 : 0

  name   = "home-services"
  user   = aws_iam_user.home[0].name
  policy = local.home_policy
}

resource "aws_iam_policy" "home" {
  name        = "${var.name}-home-services"
  description = "hevc-encoder home-server services under one identity: upload TODO/, download DONE/, results queue, trigger/status."
  policy      = local.home_policy
}
