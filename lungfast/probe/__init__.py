"""Stage 2b, frozen-embedding protocols (linear probe, kNN, few-shot), as the field's benchmarks compare
backbones: embeddings computed once and cached, then cheap heads fitted per split and seed."""
