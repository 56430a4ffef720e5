"""The evaluation job: maps of a trained model on the test split -> metrics, curves, samples."""
