"""Where a deploy puts the model server: a KServe InferenceService or a local process."""
