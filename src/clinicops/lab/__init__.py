"""The embedded lab of clinic containers."""
