"""What tasks share: locks, retries, timeouts, progress, the solve cache and the MLflow pyfunc model."""
