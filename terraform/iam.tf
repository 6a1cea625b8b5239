# Roles and users; their policies are in policies.tf.

# --- task execution role (shared by the processor and dispatcher tasks) ----

resource "aws_iam_role" "execution" {
  name               = "${var.name}-ecs-execution"
  assume_role_policy = local.ecs_tasks_assume_policy
}

resource "aws_iam_role_policy" "execution" {
  name   = "task-execution"
  role   = aws_iam_role.execution.id
  policy = local.execution_policy
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

# --- home server: s3-uploader, result-downloader, trigger, status, process -

resource "aws_iam_user" "home" {
  count = var.create_home_user ? 1 : 0

  name = "${var.name}-home"
}

resource "aws_iam_user_policy" "home" {
  count = var.create_home_user ? 1 : 0

  name   = "home-services"
  user   = aws_iam_user.home[0].name
  policy = local.home_policy
}

# Also as a managed policy, to attach to an existing user or role instead.
resource "aws_iam_policy" "home" {
  name        = "${var.name}-home-services"
  description = "hevc-encoder home-server services: upload TODO/, download DONE/, results queue, trigger/status."
  policy      = local.home_policy
}
