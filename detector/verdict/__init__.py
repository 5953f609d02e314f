"""From the score table to a verdict: frame reducers, combine orders, scoring settings."""
