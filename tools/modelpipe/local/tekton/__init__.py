"""A local runner for tekton.dev/v1 Pipelines: the repository's YAML, run on the host without a cluster."""
