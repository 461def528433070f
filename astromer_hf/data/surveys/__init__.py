"""One `datasets` builder per survey."""
