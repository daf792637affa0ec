"""Walk-forward evaluation: rolling origins, each an ordinary run, and their pooled rounds."""
