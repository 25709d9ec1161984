"""Every query db-api makes, one module per table it is about; the rule is in `database`."""
