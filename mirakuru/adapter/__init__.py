"""The effectful layer: the only code that spawns, signals, reads pipes or reads a clock."""
