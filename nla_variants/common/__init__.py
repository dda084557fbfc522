"""What every stage uses and nothing of the flow: one-line user errors, secret masking, atomic
writes, content hashes, the cache directory, MLflow store checks, the ranks of a trial, and
`Strict`, the base of every config. Imports nothing else of the package."""
