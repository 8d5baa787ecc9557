"""`kisim sweep`: a grid over scenario parameters x policies x seeds in the twin (grid, runs,
table, heat maps)."""
