"""Model loading and named model configurations."""
