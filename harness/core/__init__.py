"""The plugin core: run configuration, the plugin manager and its guards, registries, the
core's own metrics, groupers and predictors (registered as a plugin)."""
