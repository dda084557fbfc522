"""Pure tensor and text functions, no Lightning: the one implementation of normalisation, MSE, FVE,
injection and text metrics that losses, rewards and evaluation all share."""
