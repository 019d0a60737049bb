"""Human views of results: rich tables and heatmaps on the terminal, and the shared console."""
