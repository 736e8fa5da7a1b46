"""Acceptance checks of trained bundles and their packaging as the plugin's default weights."""
