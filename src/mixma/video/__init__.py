"""Video in: reading, sampling strategies, MixedFrame composition, contact sheets."""
