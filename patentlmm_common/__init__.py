"""What every layer above the remote code may import: the paper's facts, option fields, atomic files, JSON Lines."""
