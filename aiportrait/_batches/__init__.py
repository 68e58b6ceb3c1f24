"""Batches: many calls under one limit, the per-item runner, the resumable journal
and its lock file, and the outcomes a batch yields."""
