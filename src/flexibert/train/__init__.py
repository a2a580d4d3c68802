"""Stage 3: tasks and data, tokenizers, batching, metrics, the training loop, one trial, MLM pretraining."""
