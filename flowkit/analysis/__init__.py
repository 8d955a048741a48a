"""Analyses over a FlowTable or a pandas DataFrame of flows (issue 4)."""
