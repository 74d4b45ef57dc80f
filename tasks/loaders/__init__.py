"""Loaders, one a publisher format, shared by the tasks that use it."""
