"""Code constructions; importing this package registers each family's names with the registry."""
