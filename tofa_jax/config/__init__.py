"""Config checks before a run starts: every key's type, range and allowed values
(`schema`, `rules`), the checks between keys (`consistency`, with cheap `facts`),
the entry points (`validate`) and a summary of the run (`plan`)."""
