"""Deployment entrypoints and runnable examples (a checkout's folder; not installed)."""
