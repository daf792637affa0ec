"""Whether forecast probabilities mean what they say, and the Platt map that makes them."""
