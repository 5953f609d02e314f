"""Training ensemble members: splits, synthetic fakes, the loops, weight storage."""
