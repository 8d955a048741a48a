"""HTML report and plots (issue 5)."""
