"""Model compression stages: Fisher structured pruning (more stages follow: SAP retrieval, LoRA + KD, QAT)."""
