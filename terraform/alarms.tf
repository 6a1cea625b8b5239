# Alarms go to one SNS topic; subscribe an e-mail address with alarm_email or
# anything else to the sns_topic_arn output. (CloudWatch cannot publish to a
# topic encrypted with the AWS-managed SNS key, so the topic is not
# KMS-encrypted; alarm messages carry no secrets.)

resource "aws_sns_topic" "alarms" {
  name = "${var.name}-alarms"
}

resource "aws_sns_topic_policy" "alarms" {
  arn    = aws_sns_topic.alarms.arn
  policy = local.alarms_topic_policy
}

resource "aws_sns_topic_subscription" "email" {
  count = var.alarm_email == null ? 0 : 1

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

resource "aws_cloudwatch_metric_alarm" "dlq_depth" {
  for_each = {
    work    = aws_sqs_queue.work_dlq.name
    results = aws_sqs_queue.results_dlq.name
  }

  alarm_name          = "${var.name}-${each.key}-dlq-not-empty"
  alarm_description   = "Messages in ${each.value}: a ${each.key} job failed ${var.max_receive_count} times. Inspect with `make status`, fix, then `make trigger ARGS=--redrive`."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "work_oldest_message" {
  alarm_name          = "${var.name}-work-oldest-message-age"
  alarm_description   = "The oldest job on ${aws_sqs_queue.work.name} waits for more than ${var.work_age_alarm_seconds} s: the dispatcher is down, Fargate has no capacity, or tasks keep failing."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = aws_sqs_queue.work.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.work_age_alarm_seconds
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}
