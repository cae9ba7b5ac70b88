"""Backtest: replay held-out incidents against the published policy, the baselines and the oracle."""
