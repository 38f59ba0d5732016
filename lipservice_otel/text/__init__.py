"""Pure functions over a record's text: its signature, its severity, its error-like words."""
