"""Models: the MAMA dual encoder and video-QA models, and MA-LMM."""
