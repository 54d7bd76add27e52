"""proofs: the theorem catalogue, derivations and the claims checker (built on derive only)."""
