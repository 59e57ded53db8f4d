"""Endpoint pipelines: orchestration only, each step a function a test can target."""
