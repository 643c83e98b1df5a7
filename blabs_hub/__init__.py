"""Bretter Labs: Windows VM labs in the browser, as a JupyterHub plugin."""

__version__ = "0.1.0"
