"""`nla explain`: every token of a text explained and reconstructed, the JSONL and MLflow report,
and the self-contained HTML viewer (`viewer/`)."""
