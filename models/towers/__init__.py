"""User and item towers of the two-tower students; `build` chooses one from the config."""
