"""Training loops of the two phases (classifier, decoder), checkpoints and model selection."""
