"""The cloud: Flower ServerApp and strategy, checkpoint store, model registry (seeds/000 §3.4)."""
