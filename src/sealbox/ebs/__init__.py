"""Encrypted block volumes and snapshots (the EBS part)."""
