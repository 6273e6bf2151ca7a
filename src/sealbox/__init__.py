"""Sealbox: self-hosted KMS and encrypted storage speaking the AWS wire protocols."""
