"""Deployment helpers: `local` runs Baton on a developer machine."""
