"""The failure model: health checks to per-window states, per-dependency dynamics and joint failure."""
