"""Lightning modules, the data module and callbacks for warm start (and later RL)."""
