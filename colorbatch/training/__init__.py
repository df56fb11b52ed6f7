"""Training the model: the loop, data, losses, checkpoint state, guards, distributed helpers."""
