"""S3-compatible object storage: every object encrypted at rest."""
