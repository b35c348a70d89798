"""Sphinx configuration for the calc documentation."""

project = "calc"
author = "minicoder contributors"
extensions = ["sphinx.ext.autodoc"]
html_theme = "alabaster"
