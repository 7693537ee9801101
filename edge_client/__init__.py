"""The edge server: stylization service for phones, frame store, Flower ClientApp (seeds/000 §3.1, §3.4)."""
