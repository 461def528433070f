"""Survey light-curve datasets: one schema, `datasets` builders per survey, a simulator, splits and downloads."""
