"""Training library of ragprune: losses (and, as they move here from ``training/``, labels, batching,
calibration and validation). Scripts in ``training/`` import it; nothing here runs at inference time."""
