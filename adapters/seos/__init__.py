"""SEOS, the national interagency exchange (domain.md §3): Kurier as the participant for each
administration it serves — its endpoint, its client, the registry."""
