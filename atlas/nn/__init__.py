"""What Atlas does to a network: capture many layers in one pass, read a layer as the
network does, measure receptive fields, narrow a layer to the channels asked for,
redirect rectifier gradients, and take the linear path between two layers."""
