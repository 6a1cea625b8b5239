# The backend is left to the user: state is local (terraform.tfstate in this
# directory) unless you add a backend block; README.md shows an S3 backend.
terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.60, < 7.0"
    }
  }
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = merge(var.tags, {
      Project   = "hevc-encoder"
      Stack     = var.name
      ManagedBy = "terraform"
    })
  }
}
