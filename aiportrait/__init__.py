"""aiportrait."""
