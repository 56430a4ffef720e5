"""Evaluation: scoring maps with the protocol's metric (:mod:`.scoring`, also used for model
selection) and testing a trained model on the test split (:mod:`.testing`)."""
