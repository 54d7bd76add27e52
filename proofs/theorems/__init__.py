"""One module per theorem (or family of theorems) of the catalogue."""
