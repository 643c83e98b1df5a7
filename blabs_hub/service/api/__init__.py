"""The catalog's REST API: images (with resumable uploads), templates, settings."""
