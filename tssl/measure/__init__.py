"""Measurements of a trained network: efficiency metrics (firing rates, synaptic operations, energy), the bytes
autograd saves, and the floor network (the neuron replaced by one multiply) that speed is compared with."""
