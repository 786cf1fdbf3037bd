"""Building PatentLMM folders: from parts, tiny and random, or from the original checkpoints."""
