"""`kisim benchmark`: tune the rule-based opponents on training seeds, evaluate every policy on
every suite scenario over evaluation seeds, write the leaderboard (docs/benchmark.md)."""
